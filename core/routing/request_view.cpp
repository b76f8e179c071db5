#include "core/routing/request_view.h"

#include <cstring>
#include <random>

#include "core/routing/request_target.h"

namespace canopy::routing {
namespace {

char lowerAscii(char character) {
    return character >= 'A' && character <= 'Z' ? static_cast<char>(character - 'A' + 'a')
                                                : character;
}

std::string_view trimSpaces(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
        text.remove_suffix(1);
    }
    return text;
}

bool needsDecoding(std::string_view text) {
    return text.find_first_of("%+") != std::string_view::npos;
}

// Request ids need to be unique, not secret: a per-thread generator seeded
// once avoids a lock and a system call per request.
std::mt19937_64& idGenerator() {
    thread_local std::mt19937_64 generator = [] {
        std::random_device device;
        std::seed_seq seed{device(), device(), device(), device()};
        return std::mt19937_64(seed);
    }();
    return generator;
}

}  // namespace

bool equalsIgnoreCase(std::string_view left, std::string_view right) {
    if (left.size() != right.size()) {
        return false;
    }
    for (size_t index = 0; index < left.size(); ++index) {
        if (lowerAscii(left[index]) != lowerAscii(right[index])) {
            return false;
        }
    }
    return true;
}

void RequestView::forgetComputed() {
    arguments_parsed_ = false;
    arguments_.clear();
    cookies_parsed_ = false;
    cookies_.clear();
    decoded_query_.reset();
}

void RequestView::reset() {
    forgetComputed();
    request_id_.reset();
    method = {};
    target = {};
    query = {};
    host = {};
    request_line = {};
    headers = {};
    scheme = Scheme::Http;
    remote = Address();
    local = Address();
    start_time = {};
    end_time.reset();
    log_time.reset();
    response = ResponseView();
    path_.assign(1, '/');
}

const Header* RequestView::findHeader(std::string_view name) const {
    for (const Header& header : headers) {
        if (equalsIgnoreCase(header.name, name)) {
            return &header;
        }
    }
    return nullptr;
}

std::span<const Argument> RequestView::arguments() const {
    if (arguments_parsed_) {
        return arguments_;
    }
    arguments_parsed_ = true;
    arguments_.clear();
    char* storage = nullptr;
    size_t used = 0;
    // Undecoded parts are views into the query itself; only parts with '%'
    // or '+' are copied.
    auto decode = [&](std::string_view text) -> std::string_view {
        if (!needsDecoding(text)) {
            return text;
        }
        if (storage == nullptr) {
            argument_storage_ = std::make_unique<char[]>(query.size());
            storage = argument_storage_.get();
        }
        std::string decoded;
        percentDecodeLenient(text, true, decoded);
        std::memcpy(storage + used, decoded.data(), decoded.size());
        std::string_view view(storage + used, decoded.size());
        used += decoded.size();
        return view;
    };
    size_t start = 0;
    while (start <= query.size()) {
        size_t end = query.find('&', start);
        if (end == std::string_view::npos) {
            end = query.size();
        }
        std::string_view pair = query.substr(start, end - start);
        size_t equals = pair.find('=');
        std::string_view name = pair.substr(0, equals);
        std::string_view value =
            equals == std::string_view::npos ? std::string_view() : pair.substr(equals + 1);
        if (!name.empty()) {
            arguments_.push_back({decode(name), decode(value)});
        }
        start = end + 1;
    }
    return arguments_;
}

std::span<const Cookie> RequestView::cookies() const {
    if (cookies_parsed_) {
        return cookies_;
    }
    cookies_parsed_ = true;
    cookies_.clear();
    for (const Header& header : headers) {
        if (!equalsIgnoreCase(header.name, "Cookie")) {
            continue;
        }
        std::string_view rest = header.value;
        while (!rest.empty()) {
            size_t semicolon = rest.find(';');
            std::string_view pair = rest.substr(0, semicolon);
            rest = semicolon == std::string_view::npos ? std::string_view()
                                                       : rest.substr(semicolon + 1);
            size_t equals = pair.find('=');
            std::string_view name = trimSpaces(pair.substr(0, equals));
            std::string_view value = equals == std::string_view::npos
                                         ? std::string_view()
                                         : trimSpaces(pair.substr(equals + 1));
            if (!name.empty()) {
                cookies_.push_back({name, value});
            }
        }
    }
    return cookies_;
}

std::string_view RequestView::decodedQuery() const {
    if (!decoded_query_) {
        decoded_query_.emplace();
        percentDecodeLenient(query, true, *decoded_query_);
    }
    return *decoded_query_;
}

std::string_view RequestView::requestId() const {
    if (!request_id_) {
        static constexpr char kHex[] = "0123456789abcdef";
        std::array<char, 32> id;
        auto& generator = idGenerator();
        for (size_t half = 0; half < 2; ++half) {
            uint64_t bits = generator();
            for (size_t index = 0; index < 16; ++index) {
                id[half * 16 + index] = kHex[bits & 0xf];
                bits >>= 4;
            }
        }
        request_id_ = id;
    }
    return std::string_view(request_id_->data(), request_id_->size());
}

}  // namespace canopy::routing
