#include "core/config/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>

namespace canopy::config {
namespace {

struct CodeDeleter {
    void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct MatchDataDeleter {
    void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};

using Code = std::unique_ptr<pcre2_code, CodeDeleter>;

struct Compiled {
    Code code;
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
};

Compiled compile(std::string_view pattern) {
    Compiled compiled;
    compiled.code.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                      PCRE2_UTF, &compiled.error_code, &compiled.error_offset,
                                      nullptr));
    return compiled;
}

}  // namespace

std::optional<std::string> regexCompileError(std::string_view pattern) {
    Compiled compiled = compile(pattern);
    if (compiled.code) {
        return std::nullopt;
    }
    PCRE2_UCHAR buffer[256];
    int length = pcre2_get_error_message(compiled.error_code, buffer, sizeof(buffer));
    std::string message =
        length > 0 ? std::string(reinterpret_cast<const char*>(buffer), static_cast<size_t>(length))
                   : std::string("unknown error");
    return message + " at offset " + std::to_string(compiled.error_offset);
}

bool regexSearch(std::string_view pattern, std::string_view subject) {
    Compiled compiled = compile(pattern);
    if (!compiled.code) {
        return false;
    }
    std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
        pcre2_match_data_create_from_pattern(compiled.code.get(), nullptr));
    int result = pcre2_match(compiled.code.get(), reinterpret_cast<PCRE2_SPTR>(subject.data()),
                             subject.size(), 0, 0, data.get(), nullptr);
    return result >= 0;
}

}  // namespace canopy::config
