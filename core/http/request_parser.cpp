#include "core/http/request_parser.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/http/chars.h"
#include "core/http/field_line.h"

namespace canopy::http {
namespace {

// Offsets are kept in 32 bits; a head this large is refused long before.
constexpr size_t kMaxHeadLimit = size_t{1} << 30;

Method methodOf(std::string_view text) {
    // Methods are case-sensitive (RFC 9110 §9.1): "get" is an unknown token.
    switch (text.size()) {
        case 3:
            if (text == "GET") {
                return Method::Get;
            }
            if (text == "PUT") {
                return Method::Put;
            }
            break;
        case 4:
            if (text == "HEAD") {
                return Method::Head;
            }
            if (text == "POST") {
                return Method::Post;
            }
            break;
        case 5:
            if (text == "PATCH") {
                return Method::Patch;
            }
            if (text == "TRACE") {
                return Method::Trace;
            }
            break;
        case 6:
            if (text == "DELETE") {
                return Method::Delete;
            }
            break;
        case 7:
            if (text == "OPTIONS") {
                return Method::Options;
            }
            if (text == "CONNECT") {
                return Method::Connect;
            }
            break;
        default:
            break;
    }
    return Method::Other;
}

// "HTTP/" 1*3DIGIT "." 1*3DIGIT. Returns -1 when malformed, else
// major * 1000 + minor.
int parseVersion(std::string_view text) {
    if (!text.starts_with("HTTP/")) {
        return -1;
    }
    text.remove_prefix(5);
    auto number = [&text]() {
        int value = 0;
        size_t digits = 0;
        while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
            value = value * 10 + (text[digits] - '0');
            ++digits;
        }
        if (digits == 0 || digits > 3) {
            return -1;
        }
        text.remove_prefix(digits);
        return value;
    };
    int major = number();
    if (major < 0 || text.empty() || text.front() != '.') {
        return -1;
    }
    text.remove_prefix(1);
    int minor = number();
    if (minor < 0 || !text.empty()) {
        return -1;
    }
    return major * 1000 + minor;
}

// A Host value or an absolute-form authority: reg-name or IP literal with an
// optional port. Refuses what lets a host name escape into a path or a log
// (NUL, '/', '\', whitespace, '@', "..") like Unit does.
bool validHost(std::string_view host) {
    return chars::span(host, chars::kHost) == host.size() &&
           host.find("..") == std::string_view::npos;
}

}  // namespace

const HeaderField* RequestHead::find(std::string_view name) const {
    for (const HeaderField& field : fields) {
        if (field.name.size() == name.size() &&
            std::equal(name.begin(), name.end(), field.name.begin(),
                       [](char a, char b) { return chars::lower(a) == chars::lower(b); })) {
            return &field;
        }
    }
    return nullptr;
}

RequestParserOptions RequestParserOptions::fromSettings(size_t large_header_buffer_size,
                                                        size_t large_header_buffers,
                                                        bool discard_unsafe_fields) {
    RequestParserOptions options;
    options.max_line_size = large_header_buffer_size;
    options.max_head_size = large_header_buffer_size * large_header_buffers;
    options.discard_unsafe_fields = discard_unsafe_fields;
    return options;
}

RequestParser::RequestParser(RequestParserOptions options) : options_(options) {
    options_.max_head_size = std::min(options_.max_head_size, kMaxHeadLimit);
    options_.max_line_size = std::min(options_.max_line_size, options_.max_head_size);
}

void RequestParser::reset() {
    progress_ = Progress{};
    field_offsets_.clear();
    synthesized_target_.clear();
    std::vector<HeaderField> fields = std::move(head_.fields);
    fields.clear();
    head_ = RequestHead{};
    head_.fields = std::move(fields);
}

ParseResult RequestParser::fail(int status, const char* reason) {
    progress_.state = State::Error;
    progress_.final_result = ParseResult{ParseStatus::Error, 0, status, true, reason};
    return progress_.final_result;
}

ParseResult RequestParser::parse(std::string_view buffer) {
    if (progress_.state == State::Done || progress_.state == State::Error) {
        return progress_.final_result;
    }
    while (true) {
        const char* found = nullptr;
        if (progress_.scanned < buffer.size()) {
            found = static_cast<const char*>(std::memchr(buffer.data() + progress_.scanned, '\n',
                                                         buffer.size() - progress_.scanned));
        }
        size_t line_feed = found ? static_cast<size_t>(found - buffer.data()) : buffer.size();
        // Limits are checked on the bytes known to belong to the head so far,
        // and the limit crossed first wins: feeding a byte at a time and
        // feeding everything at once then give the same answer.
        size_t known_end = found ? line_feed + 1 : buffer.size();
        size_t line_limit = progress_.line_begin + options_.max_line_size;
        size_t head_limit = options_.max_head_size;
        if (known_end > std::min(line_limit, head_limit)) {
            if (line_limit <= head_limit) {
                return progress_.state == State::RequestLine ? fail(414, "request line too long")
                                                             : fail(431, "header field too long");
            }
            return fail(431, "request head too large");
        }
        if (!found) {
            progress_.scanned = buffer.size();
            return ParseResult{};
        }
        progress_.scanned = line_feed + 1;
        size_t end = line_feed;
        if (end > progress_.line_begin && buffer[end - 1] == '\r') {
            --end;
        } else if (!options_.accept_bare_lf) {
            return fail(400, "bare LF line ending");
        }
        size_t begin = progress_.line_begin;
        progress_.line_begin = line_feed + 1;
        if (progress_.state == State::RequestLine) {
            if (end == begin) {
                continue;  // RFC 9112 §2.2: ignore empty lines before the request line
            }
            ParseResult result = parseRequestLine(buffer, begin, end);
            if (result.status == ParseStatus::Error) {
                return result;
            }
            progress_.state = State::Fields;
        } else if (end == begin) {
            return finish(buffer, line_feed + 1);
        } else {
            ParseResult result = parseField(buffer, begin, end);
            if (result.status == ParseStatus::Error) {
                return result;
            }
        }
    }
}

ParseResult RequestParser::parseRequestLine(std::string_view buffer, size_t begin, size_t end) {
    std::string_view line = buffer.substr(begin, end - begin);
    progress_.request_line_begin = static_cast<uint32_t>(begin);
    progress_.request_line_size = static_cast<uint32_t>(line.size());

    size_t method_end = chars::span(line, chars::kToken);
    if (method_end == 0 || method_end == line.size() || line[method_end] != ' ') {
        return fail(400, "invalid method");
    }
    progress_.method_size = static_cast<uint32_t>(method_end);
    head_.method = methodOf(line.substr(0, method_end));

    size_t target_begin = method_end + 1;
    size_t target_size = chars::span(line.substr(target_begin), chars::kTarget);
    if (target_size == 0) {
        return fail(400, "invalid request target");
    }
    size_t target_end = target_begin + target_size;
    if (target_end == line.size()) {
        return fail(400, "no HTTP version in the request line");  // HTTP/0.9 is not served
    }
    if (line[target_end] != ' ') {
        return fail(400, "invalid character in the request target");
    }
    int version = parseVersion(line.substr(target_end + 1));
    if (version < 0) {
        return fail(400, "invalid HTTP version");
    }
    if (version / 1000 != 1) {
        return fail(505, "unsupported HTTP version");
    }
    // HTTP/1.2 and later minors are HTTP/1.1-compatible (RFC 9110 §2.5).
    head_.version_minor = version % 1000 == 0 ? 0 : 1;
    return parseTarget(buffer, begin + target_begin, begin + target_end);
}

ParseResult RequestParser::parseTarget(std::string_view buffer, size_t begin, size_t end) {
    std::string_view target = buffer.substr(begin, end - begin);
    progress_.target_begin = static_cast<uint32_t>(begin);
    progress_.target_size = static_cast<uint32_t>(target.size());
    if (target.front() == '/') {
        return ParseResult{};
    }
    if (target == "*") {
        if (head_.method != Method::Options) {
            return fail(400, "asterisk-form target outside OPTIONS");
        }
        return ParseResult{};
    }
    // Absolute form (RFC 9112 §3.2.2): servers must accept it; the authority
    // then replaces Host. Other schemes and the authority form of CONNECT are
    // for proxies, which Canopy is not.
    size_t scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos) {
        return fail(400, "invalid request target");
    }
    std::string_view scheme = target.substr(0, scheme_end);
    if (!chars::equalsLower(scheme, "http") && !chars::equalsLower(scheme, "https")) {
        return fail(400, "unsupported scheme in an absolute-form target");
    }
    size_t authority_begin = scheme_end + 3;
    size_t authority_end = target.find_first_of("/?#", authority_begin);
    if (authority_end == std::string_view::npos) {
        authority_end = target.size();
    }
    std::string_view authority = target.substr(authority_begin, authority_end - authority_begin);
    if (authority.empty()) {
        return fail(400, "empty authority in an absolute-form target");
    }
    if (authority.find('@') != std::string_view::npos) {
        return fail(400, "userinfo in an absolute-form target");
    }
    if (!validHost(authority)) {
        return fail(400, "invalid authority in an absolute-form target");
    }
    std::string_view origin = target.substr(authority_end);
    if (!origin.empty() && origin.front() == '#') {
        return fail(400, "invalid request target");
    }
    head_.absolute_form = true;
    progress_.authority_begin = static_cast<uint32_t>(begin + authority_begin);
    progress_.authority_size = static_cast<uint32_t>(authority.size());
    if (origin.empty() || origin.front() == '?') {
        progress_.synthesized_target = true;
        // push_back rather than assign("/"): GCC 12 sees a false -Wrestrict.
        synthesized_target_.clear();
        synthesized_target_.push_back('/');
        synthesized_target_.append(origin);
    } else {
        progress_.origin_begin = static_cast<uint32_t>(begin + authority_end);
        progress_.origin_size = static_cast<uint32_t>(origin.size());
    }
    return ParseResult{};
}

ParseResult RequestParser::parseField(std::string_view buffer, size_t begin, size_t end) {
    if (++progress_.field_count > options_.max_field_count) {
        return fail(431, "too many header fields");
    }
    FieldLine field;
    FieldLineError error = parseFieldLine(buffer.substr(begin, end - begin), field);
    if (error != FieldLineError::None) {
        return fail(400, describe(error));
    }
    std::string_view name = field.name;
    std::string_view value = field.value;
    if (options_.discard_unsafe_fields && chars::span(name, chars::kSafeName) != name.size()) {
        return ParseResult{};  // none of the fields below has such a name
    }
    auto offset = [&buffer](std::string_view view) {
        return static_cast<uint32_t>(view.data() - buffer.data());
    };
    field_offsets_.push_back(FieldOffsets{offset(name), static_cast<uint32_t>(name.size()),
                                          offset(value), static_cast<uint32_t>(value.size())});

    // The fields that decide framing and connection handling, by length first
    // so most fields cost one switch.
    switch (name.size()) {
        case 4:
            if (chars::equalsLower(name, "host")) {
                if (progress_.host_seen) {
                    return fail(400, "duplicate Host field");
                }
                if (!validHost(value)) {
                    return fail(400, "invalid Host field");
                }
                progress_.host_seen = true;
                progress_.host_begin = offset(value);
                progress_.host_size = static_cast<uint32_t>(value.size());
            }
            break;
        case 6:
            if (chars::equalsLower(name, "expect") && chars::equalsLower(value, "100-continue")) {
                progress_.expect_continue = true;
            }
            break;
        case 7:
            if (chars::equalsLower(name, "upgrade")) {
                if (!progress_.upgrade_seen) {
                    progress_.upgrade_seen = true;
                    progress_.upgrade_begin = offset(value);
                    progress_.upgrade_size = static_cast<uint32_t>(value.size());
                }
                chars::forEachListElement(value, [this](std::string_view protocol) {
                    std::string_view protocol_name = protocol.substr(0, protocol.find('/'));
                    if (chars::equalsLower(protocol_name, "websocket")) {
                        progress_.upgrade_websocket = true;
                    }
                    return true;
                });
            }
            break;
        case 10:
            if (chars::equalsLower(name, "connection")) {
                chars::forEachListElement(value, [this](std::string_view option) {
                    if (chars::equalsLower(option, "close")) {
                        progress_.connection_close = true;
                    } else if (chars::equalsLower(option, "keep-alive")) {
                        progress_.connection_keep_alive = true;
                    } else if (chars::equalsLower(option, "upgrade")) {
                        progress_.connection_upgrade = true;
                    }
                    return true;
                });
            }
            break;
        case 14:
            if (chars::equalsLower(name, "content-length")) {
                // Unit and nginx refuse any second Content-Length, even an
                // identical one; so do we (and hence also the list "5, 5").
                if (progress_.content_length_seen) {
                    return fail(400, "duplicate Content-Length field");
                }
                progress_.content_length_seen = true;
                if (value.empty() || value.size() > 19) {
                    return fail(400, "invalid Content-Length");
                }
                uint64_t length = 0;
                for (char c : value) {
                    if (c < '0' || c > '9') {
                        return fail(400, "invalid Content-Length");
                    }
                    length = length * 10 + static_cast<uint64_t>(c - '0');
                }
                // 19 digits fit in 64 bits; keep the value an off_t.
                if (length > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
                    return fail(400, "Content-Length too large");
                }
                progress_.content_length = length;
            }
            break;
        case 17:
            if (chars::equalsLower(name, "transfer-encoding")) {
                progress_.transfer_encoding_seen = true;
                chars::forEachListElement(value, [this](std::string_view element) {
                    size_t semicolon = element.find(';');
                    std::string_view coding = chars::trimOws(element.substr(0, semicolon));
                    if (coding.empty() || chars::span(coding, chars::kToken) != coding.size()) {
                        progress_.te_invalid = true;
                        return false;
                    }
                    progress_.te_last_chunked = chars::equalsLower(coding, "chunked");
                    if (progress_.te_last_chunked) {
                        if (semicolon != std::string_view::npos) {
                            progress_.te_invalid = true;  // chunked takes no parameters
                            return false;
                        }
                        ++progress_.te_chunked_count;
                    } else {
                        progress_.te_unknown_coding = true;
                    }
                    return true;
                });
            }
            break;
        default:
            break;
    }
    return ParseResult{};
}

ParseResult RequestParser::finish(std::string_view buffer, size_t consumed) {
    bool http11 = head_.version_minor != 0;
    if (progress_.transfer_encoding_seen) {
        if (progress_.content_length_seen) {
            return fail(400, "both Content-Length and Transfer-Encoding");
        }
        if (!http11) {
            // RFC 9112 §6.1: the framing of such a message is faulty.
            return fail(400, "Transfer-Encoding in an HTTP/1.0 request");
        }
        if (progress_.te_invalid) {
            return fail(400, "invalid Transfer-Encoding");
        }
        if (progress_.te_chunked_count == 0 && !progress_.te_unknown_coding) {
            return fail(400, "empty Transfer-Encoding");
        }
        if (progress_.te_chunked_count > 1) {
            return fail(400, "chunked applied more than once");
        }
        if (!progress_.te_last_chunked) {
            // RFC 9112 §6.3: without chunked last the body length is unknown.
            return fail(400, "chunked is not the final transfer coding");
        }
        if (progress_.te_unknown_coding) {
            return fail(501, "unsupported transfer coding");
        }
        head_.framing = BodyFraming::Chunked;
    } else if (progress_.content_length_seen) {
        head_.framing = BodyFraming::ContentLength;
        head_.content_length = progress_.content_length;
    }
    if (http11 && !progress_.host_seen) {
        return fail(400, "no Host field in an HTTP/1.1 request");
    }

    auto view = [&buffer](uint32_t begin, uint32_t size) { return buffer.substr(begin, size); };
    head_.request_line = view(progress_.request_line_begin, progress_.request_line_size);
    head_.method_text = view(progress_.request_line_begin, progress_.method_size);
    if (head_.absolute_form) {
        head_.target = !progress_.synthesized_target
                           ? view(progress_.origin_begin, progress_.origin_size)
                           : std::string_view(synthesized_target_);
        head_.host = view(progress_.authority_begin, progress_.authority_size);
        head_.has_host = true;
    } else {
        head_.target = view(progress_.target_begin, progress_.target_size);
        head_.host = view(progress_.host_begin, progress_.host_size);
        head_.has_host = progress_.host_seen;
    }
    size_t question = head_.target.find('?');
    head_.path = head_.target.substr(0, question);
    head_.has_query = question != std::string_view::npos;
    head_.query = head_.has_query ? head_.target.substr(question + 1) : std::string_view();

    head_.fields.resize(field_offsets_.size());
    for (size_t i = 0; i < field_offsets_.size(); ++i) {
        const FieldOffsets& field = field_offsets_[i];
        head_.fields[i] = HeaderField{view(field.name_begin, field.name_size),
                                      view(field.value_begin, field.value_size)};
    }

    head_.keep_alive = http11 ? !progress_.connection_close
                              : progress_.connection_keep_alive && !progress_.connection_close;
    // RFC 9110 §10.1.1: a 100-continue expectation in HTTP/1.0 is ignored.
    head_.expect_continue = http11 && progress_.expect_continue;
    head_.connection_upgrade = progress_.connection_upgrade;
    if (progress_.upgrade_seen) {
        head_.upgrade = view(progress_.upgrade_begin, progress_.upgrade_size);
    }
    head_.websocket = http11 && head_.method == Method::Get && progress_.connection_upgrade &&
                      progress_.upgrade_websocket;

    progress_.state = State::Done;
    progress_.final_result = ParseResult{ParseStatus::Done, consumed, 0, false, ""};
    return progress_.final_result;
}

}  // namespace canopy::http
