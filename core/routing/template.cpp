#include "core/routing/template.h"

#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <utility>

namespace canopy::routing {
namespace {

bool isNameCharacter(char character) {
    return (character >= 'a' && character <= 'z') || (character >= 'A' && character <= 'Z') ||
           character == '_';
}

constexpr std::array<std::pair<std::string_view, Variable>, 12> kFixedVariables = {{
    {"dollar", Variable::Dollar},
    {"method", Variable::Method},
    {"request_uri", Variable::RequestUri},
    {"uri", Variable::Uri},
    {"host", Variable::Host},
    {"remote_addr", Variable::RemoteAddr},
    {"request_line", Variable::RequestLine},
    {"request_id", Variable::RequestId},
    {"request_time", Variable::RequestTime},
    {"time_local", Variable::TimeLocal},
    {"status", Variable::Status},
    {"body_bytes_sent", Variable::BodyBytesSent},
}};

// Longest prefix first is not needed: no prefix is a prefix of another.
constexpr std::array<std::pair<std::string_view, Variable>, 4> kPrefixedVariables = {{
    {"header_", Variable::Header},
    {"arg_", Variable::Argument},
    {"cookie_", Variable::Cookie},
    {"response_header_", Variable::ResponseHeader},
}};

constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// localtime_r may take a lock and read the zone file; access logs ask for
// the same second over and over, so each thread keeps its last answer.
void appendTimeLocal(std::chrono::system_clock::time_point when, std::string& out) {
    struct Cache {
        int64_t second = -1;
        char text[40] = {};
        size_t length = 0;
    };
    thread_local Cache cache;
    int64_t second =
        std::chrono::duration_cast<std::chrono::seconds>(when.time_since_epoch()).count();
    if (second != cache.second) {
        time_t seconds = static_cast<time_t>(second);
        tm local{};
        localtime_r(&seconds, &local);
        long offset_minutes = local.tm_gmtoff / 60;
        char sign = offset_minutes < 0 ? '-' : '+';
        if (offset_minutes < 0) {
            offset_minutes = -offset_minutes;
        }
        int length = std::snprintf(cache.text, sizeof(cache.text),
                                   "%02d/%s/%04d:%02d:%02d:%02d %c%02ld%02ld", local.tm_mday,
                                   kMonths[static_cast<size_t>(local.tm_mon) % 12].data(),
                                   local.tm_year + 1900, local.tm_hour, local.tm_min, local.tm_sec,
                                   sign, offset_minutes / 60, offset_minutes % 60);
        cache.length = length > 0 ? static_cast<size_t>(length) : 0;
        cache.second = second;
    }
    out.append(cache.text, cache.length);
}

void appendRequestTime(const RequestView& request, std::string& out) {
    auto end = request.end_time.value_or(std::chrono::steady_clock::now());
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(end - request.start_time);
    long long milliseconds = elapsed.count() < 0 ? 0 : static_cast<long long>(elapsed.count());
    char buffer[32];
    int length = std::snprintf(buffer, sizeof(buffer), "%lld.%03lld", milliseconds / 1000,
                               milliseconds % 1000);
    out.append(buffer, length > 0 ? static_cast<size_t>(length) : 0);
}

}  // namespace

Result<Template> Template::compile(std::string_view text) {
    Template compiled;
    compiled.text_ = std::string(text);
    std::string literal;
    auto flushLiteral = [&] {
        if (!literal.empty()) {
            compiled.parts_.push_back(Part{true, Variable::Dollar, std::move(literal)});
            literal.clear();
        }
    };
    size_t index = 0;
    while (index < text.size()) {
        size_t dollar = text.find('$', index);
        if (dollar == std::string_view::npos) {
            literal.append(text.substr(index));
            break;
        }
        literal.append(text.substr(index, dollar - index));
        size_t position = dollar;
        index = dollar + 1;
        std::string_view name;
        if (index < text.size() && text[index] == '{') {
            size_t end = index + 1;
            while (end < text.size() && isNameCharacter(text[end])) {
                ++end;
            }
            if (end == index + 1 || end >= text.size() || text[end] != '}') {
                return Error{"invalid variable at position " + std::to_string(position) + " in \"" +
                             std::string(text) + "\""};
            }
            name = text.substr(index + 1, end - index - 1);
            index = end + 1;
        } else {
            size_t end = index;
            while (end < text.size() && isNameCharacter(text[end])) {
                ++end;
            }
            if (end == index) {
                return Error{"invalid variable at position " + std::to_string(position) + " in \"" +
                             std::string(text) + "\""};
            }
            name = text.substr(index, end - index);
            index = end;
        }

        Part part{false, Variable::Dollar, {}};
        bool known = false;
        for (const auto& [fixed, variable] : kFixedVariables) {
            if (name == fixed) {
                part.variable = variable;
                known = true;
                break;
            }
        }
        for (const auto& [prefix, variable] : kPrefixedVariables) {
            if (known) {
                break;
            }
            if (name.size() > prefix.size() && name.starts_with(prefix)) {
                part.variable = variable;
                part.text = std::string(name.substr(prefix.size()));
                if (variable == Variable::Header || variable == Variable::ResponseHeader) {
                    for (char& character : part.text) {
                        character = character == '_' ? '-' : character;
                    }
                }
                known = true;
            }
        }
        if (!known) {
            return Error{"Unknown variable \"" + std::string(name) + "\" in \"" +
                         std::string(text) + "\""};
        }
        flushLiteral();
        compiled.used_ |= 1u << static_cast<unsigned>(part.variable);
        compiled.constant_ = false;
        compiled.parts_.push_back(std::move(part));
    }
    flushLiteral();
    return compiled;
}

Template Template::literal(std::string_view text) {
    Template compiled;
    compiled.text_ = std::string(text);
    if (!text.empty()) {
        compiled.parts_.push_back(Part{true, Variable::Dollar, std::string(text)});
    }
    return compiled;
}

void Template::appendTo(const RequestView& request, std::string& out,
                        std::string_view empty_value) const {
    for (const Part& part : parts_) {
        if (part.literal) {
            out += part.text;
            continue;
        }
        size_t before = out.size();
        switch (part.variable) {
            case Variable::Dollar:
                out += '$';
                break;
            case Variable::Method:
                out += request.method;
                break;
            case Variable::RequestUri:
                out += request.target;
                break;
            case Variable::Uri:
                out += request.path();
                break;
            case Variable::Host:
                out += request.host;
                break;
            case Variable::RemoteAddr:
                request.remote.appendText(out);
                break;
            case Variable::RequestLine:
                out += request.request_line;
                break;
            case Variable::RequestId:
                out += request.requestId();
                break;
            case Variable::RequestTime:
                appendRequestTime(request, out);
                break;
            case Variable::TimeLocal:
                appendTimeLocal(request.log_time.value_or(std::chrono::system_clock::now()), out);
                break;
            case Variable::Status:
                if (request.response.status > 0) {
                    char buffer[16];
                    int length =
                        std::snprintf(buffer, sizeof(buffer), "%03d", request.response.status);
                    out.append(buffer, length > 0 ? static_cast<size_t>(length) : 0);
                }
                break;
            case Variable::BodyBytesSent:
                out += std::to_string(request.response.body_bytes_sent);
                break;
            case Variable::Header:
                if (const auto* header = request.findHeader(part.text)) {
                    out += header->value;
                }
                break;
            case Variable::Argument: {
                // The last one wins, as in Unit ("?a=1&a=2" gives "2").
                const Argument* found = nullptr;
                for (const Argument& argument : request.arguments()) {
                    if (argument.name == part.text) {
                        found = &argument;
                    }
                }
                if (found != nullptr) {
                    out += found->value;
                }
                break;
            }
            case Variable::Cookie: {
                const routing::Cookie* found = nullptr;
                for (const routing::Cookie& cookie : request.cookies()) {
                    if (cookie.name == part.text) {
                        found = &cookie;
                    }
                }
                if (found != nullptr) {
                    out += found->value;
                }
                break;
            }
            case Variable::ResponseHeader:
                for (const routing::Header& header : request.response.headers) {
                    if (equalsIgnoreCase(header.name, part.text)) {
                        out += header.value;
                        break;
                    }
                }
                break;
        }
        if (out.size() == before) {
            out += empty_value;
        }
    }
}

std::string Template::evaluate(const RequestView& request) const {
    if (parts_.size() == 1 && parts_[0].literal) {
        return parts_[0].text;
    }
    std::string out;
    appendTo(request, out);
    return out;
}

bool isTruthy(std::string_view value) {
    return !(value.empty() || value == "0" || value == "false" || value == "null" ||
             value == "undefined");
}

Result<Condition> Condition::compile(std::string_view text) {
    Condition condition;
    if (text.starts_with('!')) {
        condition.negated_ = true;
        text.remove_prefix(1);
    }
    auto compiled = Template::compile(text);
    if (!compiled) {
        return compiled.error();
    }
    condition.template_ = std::move(compiled.value());
    return condition;
}

bool Condition::holds(const RequestView& request) const {
    return isTruthy(template_.evaluate(request)) != negated_;
}

}  // namespace canopy::routing
