#include "core/routing/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <string>

namespace canopy::routing {

struct Regex::Code {
    pcre2_code* code = nullptr;
    ~Code() { pcre2_code_free(code); }
};

namespace {

struct MatchDataDeleter {
    void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};

// One match block per thread, made once: no allocation per match. One
// ovector pair is enough because captures are never exposed (pcre2_match
// returns 0 rather than failing when the ovector is too small).
pcre2_match_data* threadMatchData() {
    thread_local std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
        pcre2_match_data_create(1, nullptr));
    return data.get();
}

}  // namespace

Result<Regex> Regex::compile(std::string_view pattern) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    // MATCH_INVALID_UTF: a request may carry bytes that are not UTF-8; they
    // simply do not match instead of making pcre2_match fail.
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                      PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &error_code, &error_offset, nullptr);
    if (code == nullptr) {
        PCRE2_UCHAR buffer[256];
        int length = pcre2_get_error_message(error_code, buffer, sizeof(buffer));
        std::string message = length > 0 ? std::string(reinterpret_cast<const char*>(buffer),
                                                       static_cast<size_t>(length))
                                         : std::string("unknown error");
        return Error{"invalid regular expression \"" + std::string(pattern) + "\": " + message +
                     " at offset " + std::to_string(error_offset)};
    }
    auto compiled = std::make_shared<Code>();
    compiled->code = code;
    // JIT is an optimization only; without it the interpreter runs.
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    return Regex(std::move(compiled));
}

bool Regex::search(std::string_view subject) const {
    pcre2_match_data* data = threadMatchData();
    if (data == nullptr) {
        return false;
    }
    // PCRE2 before 10.43 refuses a null subject even when it is empty.
    const char* bytes = subject.data() != nullptr ? subject.data() : "";
    int result = pcre2_match(code_->code, reinterpret_cast<PCRE2_SPTR>(bytes), subject.size(), 0, 0,
                             data, nullptr);
    return result >= 0;
}

}  // namespace canopy::routing
