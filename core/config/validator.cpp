#include "core/config/validator.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "core/base/hex.h"
#include "core/config/json_schema.h"
#include "core/config/regex.h"

namespace canopy::config {
namespace {

constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();
constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();
// Timeouts become milliseconds in 32-bit timers (Unit's nxt_msec_t); larger
// values would wrap, so Canopy refuses them instead.
constexpr int64_t kMaxTimeout = kMaxInt32 / 1000;
constexpr int64_t kMaxId = std::numeric_limits<uint32_t>::max();
constexpr size_t kMaxUnixPath = 107;  // sizeof(sockaddr_un::sun_path) - 1

// Keys every application has whatever its language; all others belong to
// the module's schema.
constexpr std::array<std::string_view, 10> kCommonApplicationKeys = {
    "type",        "processes", "limits", "working_directory", "user", "group",
    "environment", "stdout",    "stderr", "isolation"};

constexpr std::array<std::string_view, 14> kVariables = {
    "dollar",         "method",           "request_uri",  "uri",        "host",   "remote_addr",
    "request_line",   "request_id",       "request_time", "time_local", "status", "body_bytes_sent",
    "header_referer", "header_user_agent"};

constexpr std::array<std::string_view, 4> kVariablePrefixes = {"header_", "arg_", "cookie_",
                                                               "response_header_"};

bool contains(const auto& list, std::string_view item) {
    return std::find(list.begin(), list.end(), item) != list.end();
}

std::string lowercase(std::string_view text) {
    std::string result(text);
    std::transform(result.begin(), result.end(), result.begin(),
                   [](unsigned char character) { return std::tolower(character); });
    return result;
}

bool isVariableNameCharacter(char character) {
    return (character >= 'a' && character <= 'z') || (character >= 'A' && character <= 'Z') ||
           character == '_';
}

bool isKnownVariable(std::string_view name) {
    if (contains(kVariables, name)) {
        return true;
    }
    return std::any_of(kVariablePrefixes.begin(), kVariablePrefixes.end(),
                       [&](std::string_view prefix) {
                           return name.size() > prefix.size() && name.starts_with(prefix);
                       });
}

// The text with %XX sequences decoded; nullopt when a '%' is not followed by
// two hex digits.
std::optional<std::string> percentDecode(std::string_view text) {
    std::string decoded;
    decoded.reserve(text.size());
    for (size_t index = 0; index < text.size(); ++index) {
        if (text[index] != '%') {
            decoded += text[index];
            continue;
        }
        if (index + 2 >= text.size()) {
            return std::nullopt;
        }
        int high = hexDigitValue(text[index + 1]);
        int low = hexDigitValue(text[index + 2]);
        if (high < 0 || low < 0) {
            return std::nullopt;
        }
        decoded += static_cast<char>(high * 16 + low);
        index += 2;
    }
    return decoded;
}

std::optional<int64_t> parseDecimal(std::string_view text, int64_t max) {
    if (text.empty() || text.size() > 18) {
        return std::nullopt;
    }
    int64_t value = 0;
    for (char character : text) {
        if (character < '0' || character > '9') {
            return std::nullopt;
        }
        value = value * 10 + (character - '0');
    }
    if (value > max) {
        return std::nullopt;
    }
    return value;
}

// Why a port range ("80" or "8000-8080") is invalid, or nullopt.
std::optional<std::string> portRangeProblem(std::string_view text) {
    size_t dash = text.find('-');
    auto first = parseDecimal(text.substr(0, dash), 65535);
    if (!first) {
        return "the port must be a number from 0 to 65535";
    }
    if (dash == std::string_view::npos) {
        return std::nullopt;
    }
    auto last = parseDecimal(text.substr(dash + 1), 65535);
    if (!last) {
        return "the port must be a number from 0 to 65535";
    }
    if (*last < *first) {
        return "the port range must be ascending";
    }
    return std::nullopt;
}

struct IpAddress {
    int family = 0;
    unsigned char bytes[16] = {};
};

std::optional<IpAddress> parseIp(std::string_view text, int family) {
    if (text.size() >= INET6_ADDRSTRLEN) {
        return std::nullopt;
    }
    std::string copy(text);
    IpAddress address;
    address.family = family;
    if (inet_pton(family, copy.c_str(), address.bytes) != 1) {
        return std::nullopt;
    }
    return address;
}

// Why an address part of an address pattern ("10.0.0.1", "10.0.0.0/8",
// "10.0.0.1-10.0.0.9", or the IPv6 equivalents) is invalid, or nullopt.
std::optional<std::string> ipPatternProblem(std::string_view text, int family) {
    size_t address_length = family == AF_INET ? 4 : 16;
    if (size_t slash = text.find('/'); slash != std::string_view::npos) {
        if (!parseIp(text.substr(0, slash), family)) {
            return "invalid address";
        }
        if (!parseDecimal(text.substr(slash + 1), static_cast<int64_t>(address_length * 8))) {
            return "the CIDR prefix length must be a number from 0 to " +
                   std::to_string(address_length * 8);
        }
        return std::nullopt;
    }
    if (size_t dash = text.find('-'); dash != std::string_view::npos) {
        auto first = parseIp(text.substr(0, dash), family);
        auto last = parseIp(text.substr(dash + 1), family);
        if (!first || !last) {
            return "invalid address range";
        }
        if (std::memcmp(first->bytes, last->bytes, address_length) > 0) {
            return "the address range must be ascending";
        }
        return std::nullopt;
    }
    if (!parseIp(text, family)) {
        return "invalid address";
    }
    return std::nullopt;
}

// Why an address pattern (config-schema §3.3) is invalid, or nullopt.
std::optional<std::string> addressPatternProblem(std::string_view text) {
    if (text.starts_with('!')) {
        text.remove_prefix(1);
    }
    if (text == "unix") {
        return std::nullopt;
    }
    if (text.empty()) {
        return "the pattern is empty";
    }
    if (text == "*") {
        return "a bare \"*\" is not allowed; omit the option to match any address";
    }
    if (text.starts_with('[')) {
        size_t close = text.find(']');
        if (close == std::string_view::npos) {
            return "missing \"]\"";
        }
        if (auto problem = ipPatternProblem(text.substr(1, close - 1), AF_INET6)) {
            return problem;
        }
        std::string_view rest = text.substr(close + 1);
        if (rest.empty()) {
            return std::nullopt;
        }
        if (!rest.starts_with(':')) {
            return "expected \":PORT\" after \"]\"";
        }
        return portRangeProblem(rest.substr(1));
    }
    if (text.starts_with("*:")) {
        return portRangeProblem(text.substr(2));
    }
    size_t colons = static_cast<size_t>(std::count(text.begin(), text.end(), ':'));
    if (colons > 1) {
        return ipPatternProblem(text, AF_INET6);
    }
    if (colons == 1) {
        size_t colon = text.find(':');
        if (auto problem = ipPatternProblem(text.substr(0, colon), AF_INET)) {
            return problem;
        }
        return portRangeProblem(text.substr(colon + 1));
    }
    return ipPatternProblem(text, AF_INET);
}

// Why a socket address ("*:8080", "127.0.0.1:8080", "[::1]:8080",
// "unix:/path", "unix:@name") is invalid, or nullopt. `allow_any` admits
// "*:PORT".
std::optional<std::string> socketAddressProblem(std::string_view text, bool allow_any) {
    if (text.starts_with("unix:")) {
        std::string_view path = text.substr(5);
        if (path.size() > kMaxUnixPath) {
            return "the socket path is too long";
        }
        if (path.starts_with('@')) {
            return path.size() > 1 ? std::nullopt
                                   : std::optional<std::string>("the abstract name is empty");
        }
        if (!path.starts_with('/')) {
            return "a Unix socket needs an absolute path or an @abstract name";
        }
        return std::nullopt;
    }
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
        return "a port is required";
    }
    std::string_view host = text.substr(0, colon);
    if (!parseDecimal(text.substr(colon + 1), 65535) ||
        *parseDecimal(text.substr(colon + 1), 65535) == 0) {
        return "the port must be a number from 1 to 65535";
    }
    if (host.starts_with('[')) {
        if (!host.ends_with(']') || !parseIp(host.substr(1, host.size() - 2), AF_INET6)) {
            return "invalid IPv6 address";
        }
        return std::nullopt;
    }
    if (host == "*") {
        return allow_any ? std::nullopt : std::optional<std::string>("\"*\" is not allowed here");
    }
    if (!parseIp(host, AF_INET)) {
        return "the address must be \"*\", an IPv4 address or an IPv6 address in brackets";
    }
    return std::nullopt;
}

std::optional<size_t> base64DecodedLength(std::string_view text) {
    if (text.empty() || text.size() % 4 != 0) {
        return std::nullopt;
    }
    size_t padding = 0;
    for (size_t index = 0; index < text.size(); ++index) {
        char character = text[index];
        bool alphabet = std::isalnum(static_cast<unsigned char>(character)) || character == '+' ||
                        character == '/';
        if (character == '=') {
            if (index + 2 < text.size()) {
                return std::nullopt;
            }
            ++padding;
        } else if (!alphabet || padding > 0) {
            return std::nullopt;
        }
    }
    return text.size() / 4 * 3 - padding;
}

// Names the bound the value crossed, so that a negative timeout reads
// "must be greater than or equal to 0".
std::string rangeMessage(const Location& where, int64_t value, int64_t minimum, int64_t maximum) {
    std::string subject = "The " + where.subject();
    if (value < minimum) {
        if (minimum == 1) {
            return subject + " must be greater than 0.";
        }
        return subject + " must be greater than or equal to " + std::to_string(minimum) + ".";
    }
    return subject + " must be less than or equal to " + std::to_string(maximum) + ".";
}

using Check = std::function<ValidationResult(const json::Value&, const Location&)>;

struct MemberRule {
    std::string_view key;
    Check check;
    bool required = false;
};

class Validator {
  public:
    Validator(const json::Value& root, const ValidationContext& context)
        : root_(root), context_(context) {}

    ValidationResult run() {
        return checkMembers(
            root_, Location(),
            {
                {"listeners", [this](auto& v, auto& w) { return listeners(v, w); }},
                {"routes", [this](auto& v, auto& w) { return routes(v, w); }},
                {"applications", [this](auto& v, auto& w) { return applications(v, w); }},
                {"upstreams", [this](auto& v, auto& w) { return upstreams(v, w); }},
                {"settings", [this](auto& v, auto& w) { return settings(v, w); }},
                {"access_log", [this](auto& v, auto& w) { return accessLog(v, w); }},
            });
    }

  private:
    // ---- generic shapes ----

    static ValidationResult checkMembers(const json::Value& value, const Location& where,
                                         const std::vector<MemberRule>& rules) {
        if (!value.isObject()) {
            return typeError(where, {"object"}, value);
        }
        for (const auto& member : value.asObject()) {
            auto rule = std::find_if(rules.begin(), rules.end(), [&](const MemberRule& candidate) {
                return candidate.key == member.key;
            });
            Location member_where = where.member(member.key);
            if (rule == rules.end()) {
                return member_where.error("Unknown parameter " + inQuotes(member.key) + ".");
            }
            if (auto result = rule->check(member.value, member_where); !result) {
                return result;
            }
        }
        for (const auto& rule : rules) {
            if (rule.required && value.find(rule.key) == nullptr) {
                return where.error("Required parameter " + inQuotes(rule.key) + " is missing.");
            }
        }
        return {};
    }

    // Each member of an object checked by `check`; names must be non-empty
    // when `non_empty_names`.
    ValidationResult eachMember(const json::Value& value, const Location& where, const Check& check,
                                bool non_empty_names = false) {
        if (!value.isObject()) {
            return typeError(where, {"object"}, value);
        }
        for (const auto& member : value.asObject()) {
            if (non_empty_names && member.key.empty()) {
                return where.member(member.key)
                    .error("The " + where.subject() + " must not contain an empty member name.");
            }
            if (auto result = check(member.value, where.member(member.key)); !result) {
                return result;
            }
        }
        return {};
    }

    static ValidationResult string(const json::Value& value, const Location& where) {
        if (!value.isString()) {
            return typeError(where, {"string"}, value);
        }
        return {};
    }

    static ValidationResult nonEmptyString(const json::Value& value, const Location& where) {
        if (auto result = string(value, where); !result) {
            return result;
        }
        if (value.asString().empty()) {
            return where.error("The " + where.subject() + " must not be empty.");
        }
        return {};
    }

    static ValidationResult boolean(const json::Value& value, const Location& where) {
        if (!value.isBool()) {
            return typeError(where, {"boolean"}, value);
        }
        return {};
    }

    static ValidationResult integer(const json::Value& value, const Location& where,
                                    int64_t minimum, int64_t maximum) {
        if (!value.isInteger()) {
            return typeError(where, {"integer"}, value);
        }
        int64_t number = *value.asNumber().integer();
        if (number < minimum || number > maximum) {
            return where.error(rangeMessage(where, number, minimum, maximum));
        }
        return {};
    }

    static Check integerIn(int64_t minimum, int64_t maximum) {
        return [=](const json::Value& value, const Location& where) {
            return integer(value, where, minimum, maximum);
        };
    }

    static Check stringCheck() { return &Validator::string; }
    static Check nonEmptyStringCheck() { return &Validator::nonEmptyString; }
    static Check booleanCheck() { return &Validator::boolean; }

    // A string or an array of strings, each checked by `check`.
    static ValidationResult stringOrStrings(const json::Value& value, const Location& where,
                                            const Check& check, bool non_empty_array) {
        if (value.isString()) {
            return check(value, where);
        }
        if (!value.isArray()) {
            return typeError(where, {"string", "array"}, value);
        }
        if (non_empty_array && value.asArray().empty()) {
            return where.error("The " + where.subject() + " must contain at least one element.");
        }
        for (size_t index = 0; index < value.asArray().size(); ++index) {
            const auto& element = value.asArray()[index];
            Location element_where = where.element(index);
            if (!element.isString()) {
                return typeError(element_where, {"string"}, element);
            }
            if (auto result = check(element, element_where); !result) {
                return result;
            }
        }
        return {};
    }

    ValidationResult unsupported(const Location& where, std::string_view feature) {
        return where.error("The " + inQuotes(where.name()) +
                           " option is not supported: Canopy is built without " +
                           std::string(feature) + " support.");
    }

    // ---- template strings (§9) ----

    // Variables in `text` are checked; `has_variables` tells whether any was
    // found.
    ValidationResult templateText(std::string_view text, const Location& where,
                                  bool* has_variables = nullptr) {
        if (has_variables != nullptr) {
            *has_variables = false;
        }
        if (context_.features.njs && text.size() >= 2 && text.starts_with('`') &&
            text.ends_with('`')) {
            // An njs template literal: the script is checked when compiled.
            if (has_variables != nullptr) {
                *has_variables = true;
            }
            return {};
        }
        size_t index = 0;
        while (index < text.size()) {
            if (text[index] != '$') {
                ++index;
                continue;
            }
            size_t position = index;
            ++index;
            std::string_view name;
            if (index < text.size() && text[index] == '{') {
                size_t end = index + 1;
                while (end < text.size() && isVariableNameCharacter(text[end])) {
                    ++end;
                }
                if (end == index + 1 || end >= text.size() || text[end] != '}') {
                    return where.error("The " + where.subject() +
                                       " has an invalid variable at position " +
                                       std::to_string(position) + ".");
                }
                name = text.substr(index + 1, end - index - 1);
                index = end + 1;
            } else {
                size_t end = index;
                while (end < text.size() && isVariableNameCharacter(text[end])) {
                    ++end;
                }
                if (end == index) {
                    return where.error("The " + where.subject() +
                                       " has an invalid variable at position " +
                                       std::to_string(position) + ".");
                }
                name = text.substr(index, end - index);
                index = end;
            }
            if (!isKnownVariable(name)) {
                return where.error("Unknown variable " + inQuotes(name) + " in the " +
                                   where.subject() + ".");
            }
            if (has_variables != nullptr) {
                *has_variables = true;
            }
        }
        return {};
    }

    ValidationResult templateString(const json::Value& value, const Location& where) {
        if (!value.isString()) {
            return typeError(where, {"string"}, value);
        }
        return templateText(value.asString(), where);
    }

    Check templateCheck() {
        return [this](const json::Value& value, const Location& where) {
            return templateString(value, where);
        };
    }

    // A condition: a template string with an optional leading "!".
    ValidationResult condition(const json::Value& value, const Location& where) {
        if (!value.isString()) {
            return typeError(where, {"string"}, value);
        }
        std::string_view text = value.asString();
        if (text.starts_with('!')) {
            text.remove_prefix(1);
        }
        return templateText(text, where);
    }

    // ---- patterns (§3.2) ----

    ValidationResult pattern(const json::Value& value, const Location& where, bool encoded) {
        std::string_view text = value.asString();
        std::string_view body = text.starts_with('!') ? text.substr(1) : text;
        if (body.starts_with('~')) {
            if (!context_.features.regex) {
                return where.error("The " + where.subject() + " " + inQuotes(text) +
                                   " is a regular expression, but Canopy is built without "
                                   "regular expression support.");
            }
            if (auto problem = regexCompileError(body.substr(1))) {
                return where.error("Invalid regular expression " + inQuotes(body.substr(1)) +
                                   " in the " + where.subject() + ": " + *problem + ".");
            }
            return {};
        }
        if (body.find("**") != std::string_view::npos) {
            return where.error("The " + inQuotes(where.name()) + " pattern " + inQuotes(text) +
                               " must not contain double \"*\" markers.");
        }
        if (encoded && !percentDecode(body)) {
            return where.error("The " + inQuotes(where.name()) + " pattern " + inQuotes(text) +
                               " has an invalid percent-encoded sequence.");
        }
        return {};
    }

    ValidationResult patterns(const json::Value& value, const Location& where, bool encoded) {
        return stringOrStrings(
            value, where,
            [this, encoded](const json::Value& element, const Location& element_where) {
                return pattern(element, element_where, encoded);
            },
            false);
    }

    Check patternsCheck(bool encoded) {
        return [this, encoded](const json::Value& value, const Location& where) {
            return patterns(value, where, encoded);
        };
    }

    // "arguments", "headers", "cookies": an object name → pattern(s), or an
    // array of such objects.
    ValidationResult patternSets(const json::Value& value, const Location& where, bool encoded) {
        auto set = [&](const json::Value& object, const Location& object_where) {
            if (!object.isObject()) {
                return ValidationResult(typeError(object_where, {"object"}, object));
            }
            for (const auto& member : object.asObject()) {
                Location member_where = object_where.member(member.key);
                if (member.key.empty()) {
                    return ValidationResult(
                        member_where.error("The " + inQuotes(where.name()) +
                                           " object must not contain an empty " + "member name."));
                }
                if (encoded && !percentDecode(member.key)) {
                    return ValidationResult(member_where.error(
                        "The " + inQuotes(where.name()) + " name " + inQuotes(member.key) +
                        " has an invalid percent-encoded sequence."));
                }
                if (auto result = patterns(member.value, member_where, encoded); !result) {
                    return result;
                }
            }
            return ValidationResult();
        };
        if (value.isArray()) {
            for (size_t index = 0; index < value.asArray().size(); ++index) {
                if (auto result = set(value.asArray()[index], where.element(index)); !result) {
                    return result;
                }
            }
            return {};
        }
        if (!value.isObject()) {
            return typeError(where, {"object", "array"}, value);
        }
        return set(value, where);
    }

    ValidationResult addressPatterns(const json::Value& value, const Location& where) {
        return stringOrStrings(
            value, where,
            [](const json::Value& element, const Location& element_where) {
                if (auto problem = addressPatternProblem(element.asString())) {
                    return ValidationResult(element_where.error(
                        "The " + inQuotes(element_where.name()) + " address pattern " +
                        inQuotes(element.asString()) + " is invalid: " + *problem + "."));
                }
                return ValidationResult();
            },
            false);
    }

    Check addressPatternsCheck() {
        return [this](const json::Value& value, const Location& where) {
            return addressPatterns(value, where);
        };
    }

    // ---- cross references ----

    ValidationResult pass(const json::Value& value, const Location& where) {
        if (!value.isString()) {
            return typeError(where, {"string"}, value);
        }
        const std::string& text = value.asString();
        bool has_variables = false;
        if (auto result = templateText(text, where, &has_variables); !result) {
            return result;
        }
        if (has_variables) {
            return {};  // resolved per request; an unknown target answers 404
        }
        auto invalid = [&](const std::string& reason) {
            return where.error("Request \"pass\" points to invalid location " + inQuotes(text) +
                               ": " + reason + ".");
        };
        std::vector<std::string> segments;
        size_t start = 0;
        while (true) {
            size_t slash = text.find('/', start);
            std::string_view raw = std::string_view(text).substr(
                start, slash == std::string::npos ? std::string::npos : slash - start);
            auto decoded = percentDecode(raw);
            if (!decoded) {
                return invalid("invalid percent-encoding");
            }
            segments.push_back(std::move(*decoded));
            if (slash == std::string::npos) {
                break;
            }
            start = slash + 1;
        }
        const std::string& kind = segments[0];
        if (kind == "routes") {
            const json::Value* routes = root_.find("routes");
            if (segments.size() == 1) {
                if (routes == nullptr || !routes->isArray()) {
                    return invalid(routes == nullptr
                                       ? "there are no routes"
                                       : "\"routes\" is an object, so a route name is needed");
                }
                return {};
            }
            if (segments.size() > 2 || segments[1].empty()) {
                return invalid("expected \"routes\" or \"routes/NAME\"");
            }
            if (routes == nullptr || !routes->isObject() || routes->find(segments[1]) == nullptr) {
                return invalid("no route named " + inQuotes(segments[1]));
            }
            return {};
        }
        if (kind == "applications") {
            if (segments.size() < 2 || segments.size() > 3 || segments[1].empty() ||
                (segments.size() == 3 && segments[2].empty())) {
                return invalid("expected \"applications/NAME\" or \"applications/NAME/TARGET\"");
            }
            const json::Value* applications = root_.find("applications");
            const json::Value* application =
                applications == nullptr ? nullptr : applications->find(segments[1]);
            if (application == nullptr) {
                return invalid("no application named " + inQuotes(segments[1]));
            }
            if (segments.size() == 3) {
                const json::Value* targets = application->find("targets");
                if (targets == nullptr || !targets->isObject()) {
                    return invalid("application " + inQuotes(segments[1]) + " has no targets");
                }
                if (targets->find(segments[2]) == nullptr) {
                    return invalid("application " + inQuotes(segments[1]) + " has no target " +
                                   inQuotes(segments[2]));
                }
            }
            return {};
        }
        if (kind == "upstreams") {
            if (segments.size() != 2 || segments[1].empty()) {
                return invalid("expected \"upstreams/NAME\"");
            }
            const json::Value* upstreams = root_.find("upstreams");
            if (upstreams == nullptr || upstreams->find(segments[1]) == nullptr) {
                return invalid("no upstream named " + inQuotes(segments[1]));
            }
            return {};
        }
        return invalid(
            "expected \"applications/NAME[/TARGET]\", \"routes[/NAME]\" or \"upstreams/NAME\"");
    }

    // ---- listeners (§2) ----

    ValidationResult listeners(const json::Value& value, const Location& where) {
        if (!value.isObject()) {
            return typeError(where, {"object"}, value);
        }
        for (const auto& member : value.asObject()) {
            Location listener_where = where.member(member.key);
            if (auto problem = socketAddressProblem(member.key, true)) {
                return listener_where.error("The listener address " + inQuotes(member.key) +
                                            " is invalid: " + *problem + ".");
            }
            if (auto result = listener(member.value, listener_where); !result) {
                return result;
            }
        }
        return {};
    }

    ValidationResult listener(const json::Value& value, const Location& where) {
        return checkMembers(
            value, where,
            {
                {"pass", [this](auto& v, auto& w) { return pass(v, w); }},
                {"application",
                 [this](auto& v, auto& w) {
                     if (!v.isString()) {
                         return ValidationResult(typeError(w, {"string"}, v));
                     }
                     const json::Value* applications = root_.find("applications");
                     if (applications == nullptr || applications->find(v.asString()) == nullptr) {
                         return ValidationResult(
                             w.error("Listening socket is assigned for a non existing "
                                     "application " +
                                     inQuotes(v.asString()) + "."));
                     }
                     return ValidationResult();
                 }},
                {"tls", [this](auto& v, auto& w) { return tls(v, w); }},
                {"forwarded", [this](auto& v, auto& w) { return forwarded(v, w); }},
                {"client_ip",
                 [this](auto& v, auto& w) {
                     return checkMembers(v, w,
                                         {{"header", nonEmptyStringCheck(), true},
                                          {"source", addressPatternsCheck(), true},
                                          {"recursive", booleanCheck()}});
                 }},
                {"backlog", integerIn(-1, kMaxInt32)},
            });
    }

    ValidationResult tls(const json::Value& value, const Location& where) {
        if (!context_.features.tls) {
            return unsupported(where, "TLS");
        }
        auto certificate = [this](const json::Value& name, const Location& name_where) {
            if (auto result = nonEmptyString(name, name_where); !result) {
                return result;
            }
            if (!context_.certificate_exists || !context_.certificate_exists(name.asString())) {
                return ValidationResult(name_where.error(
                    "Certificate " + inQuotes(name.asString()) + " is not found."));
            }
            return ValidationResult();
        };
        auto ticket = [](const json::Value& key, const Location& key_where) {
            auto length = base64DecodedLength(key.asString());
            if (!length || (*length != 48 && *length != 80)) {
                return ValidationResult(key_where.error(
                    "The " + key_where.subject() +
                    " must be a base64-encoded session ticket key of 48 or 80 bytes."));
            }
            return ValidationResult();
        };
        return checkMembers(
            value, where,
            {
                {"certificate",
                 [certificate](auto& v, auto& w) {
                     return stringOrStrings(v, w, certificate, true);
                 },
                 true},
                {"conf_commands",
                 [this](auto& v, auto& w) { return eachMember(v, w, stringCheck(), true); }},
                {"session",
                 [this, ticket](auto& v, auto& w) {
                     return checkMembers(v, w,
                                         {{"cache_size", integerIn(0, kMaxInt32)},
                                          {"timeout", integerIn(1, kMaxTimeout)},
                                          {"tickets", [ticket](auto& tv, auto& tw) {
                                               if (tv.isBool()) {
                                                   return ValidationResult();
                                               }
                                               if (!tv.isString() && !tv.isArray()) {
                                                   return ValidationResult(typeError(
                                                       tw, {"boolean", "string", "array"}, tv));
                                               }
                                               return stringOrStrings(tv, tw, ticket, false);
                                           }}});
                 }},
            });
    }

    ValidationResult forwarded(const json::Value& value, const Location& where) {
        if (auto result = checkMembers(value, where,
                                       {{"client_ip", nonEmptyStringCheck()},
                                        {"protocol", nonEmptyStringCheck()},
                                        {"source", addressPatternsCheck(), true},
                                        {"recursive", booleanCheck()}});
            !result) {
            return result;
        }
        if (value.find("client_ip") == nullptr && value.find("protocol") == nullptr) {
            return where.error(
                "The \"forwarded\" object must have either \"client_ip\" or \"protocol\" option "
                "set.");
        }
        return {};
    }

    // ---- routes (§3) ----

    ValidationResult routes(const json::Value& value, const Location& where) {
        if (value.isArray()) {
            return steps(value, where);
        }
        if (!value.isObject()) {
            return typeError(where, {"array", "object"}, value);
        }
        for (const auto& member : value.asObject()) {
            Location route_where = where.member(member.key);
            if (member.key.empty()) {
                return route_where.error("A route name must not be empty.");
            }
            if (!member.value.isArray()) {
                return typeError(route_where, {"array"}, member.value);
            }
            if (auto result = steps(member.value, route_where); !result) {
                return result;
            }
        }
        return {};
    }

    ValidationResult steps(const json::Value& value, const Location& where) {
        for (size_t index = 0; index < value.asArray().size(); ++index) {
            if (auto result =
                    checkMembers(value.asArray()[index], where.element(index),
                                 {{"match", [this](auto& v, auto& w) { return match(v, w); }},
                                  {"action", [this](auto& v, auto& w) { return action(v, w); }}});
                !result) {
                return result;
            }
        }
        return {};
    }

    ValidationResult match(const json::Value& value, const Location& where) {
        return checkMembers(
            value, where,
            {
                {"method", patternsCheck(false)},
                {"host", patternsCheck(false)},
                {"uri", patternsCheck(true)},
                {"query", patternsCheck(true)},
                {"arguments", [this](auto& v, auto& w) { return patternSets(v, w, true); }},
                {"headers", [this](auto& v, auto& w) { return patternSets(v, w, false); }},
                {"cookies", [this](auto& v, auto& w) { return patternSets(v, w, false); }},
                {"scheme",
                 [](auto& v, auto& w) {
                     if (!v.isString()) {
                         return ValidationResult(typeError(w, {"string"}, v));
                     }
                     std::string scheme = lowercase(v.asString());
                     if (scheme != "http" && scheme != "https") {
                         return ValidationResult(w.error(
                             "The \"scheme\" can either be \"http\" or \"https\", but not " +
                             inQuotes(v.asString()) + "."));
                     }
                     return ValidationResult();
                 }},
                {"source", addressPatternsCheck()},
                {"destination", addressPatternsCheck()},
                {"if", [this](auto& v, auto& w) { return condition(v, w); }},
            });
    }

    ValidationResult action(const json::Value& value, const Location& where) {
        if (!value.isObject()) {
            return typeError(where, {"object"}, value);
        }
        static constexpr std::array<std::string_view, 4> kKinds = {"pass", "return", "share",
                                                                   "proxy"};
        std::string_view kind;
        size_t kinds = 0;
        for (std::string_view candidate : kKinds) {
            if (value.find(candidate) != nullptr) {
                kind = kind.empty() ? candidate : kind;
                ++kinds;
            }
        }
        if (kinds == 0) {
            return where.error(
                "The \"action\" object must have either \"pass\", \"share\", \"proxy\", or "
                "\"return\" option set.");
        }
        if (kinds > 1) {
            return where.error(
                "The \"action\" object must have only one of \"pass\", \"share\", \"proxy\", or "
                "\"return\" options set.");
        }
        static constexpr std::array<std::string_view, 6> kShareOnly = {
            "index", "types", "fallback", "chroot", "follow_symlinks", "traverse_mounts"};
        for (const auto& member : value.asObject()) {
            Location member_where = where.member(member.key);
            if (member.key == "location" && kind != "return") {
                return member_where.error(
                    "The \"location\" option is allowed only with "
                    "\"return\".");
            }
            if (contains(kShareOnly, member.key) && kind != "share") {
                return member_where.error("The " + inQuotes(member.key) +
                                          " option is allowed only with \"share\".");
            }
            if ((member.key == "chroot" || member.key == "follow_symlinks" ||
                 member.key == "traverse_mounts") &&
                !context_.features.openat2) {
                return unsupported(member_where, "openat2");
            }
        }
        return checkMembers(
            value, where,
            {
                {"pass", [this](auto& v, auto& w) { return pass(v, w); }},
                {"return", integerIn(0, 999)},
                {"location", templateCheck()},
                {"share",
                 [this](auto& v, auto& w) {
                     return stringOrStrings(
                         v, w,
                         [this](auto& element, auto& element_where) {
                             return templateText(element.asString(), element_where);
                         },
                         true);
                 }},
                {"index", nonEmptyStringCheck()},
                {"types", patternsCheck(false)},
                {"fallback", [this](auto& v, auto& w) { return action(v, w); }},
                {"chroot", templateCheck()},
                {"follow_symlinks", booleanCheck()},
                {"traverse_mounts", booleanCheck()},
                {"proxy",
                 [](auto& v, auto& w) {
                     if (!v.isString()) {
                         return ValidationResult(typeError(w, {"string"}, v));
                     }
                     std::string_view text = v.asString();
                     std::optional<std::string> problem;
                     if (!text.starts_with("http://")) {
                         problem = "it must start with \"http://\"";
                     } else {
                         problem = socketAddressProblem(text.substr(7), false);
                     }
                     if (problem) {
                         return ValidationResult(w.error("The \"proxy\" address " + inQuotes(text) +
                                                         " is invalid: " + *problem + "."));
                     }
                     return ValidationResult();
                 }},
                {"rewrite", templateCheck()},
                {"response_headers", [this](auto& v, auto& w) { return responseHeaders(v, w); }},
            });
    }

    ValidationResult responseHeaders(const json::Value& value, const Location& where) {
        if (!value.isObject()) {
            return typeError(where, {"object"}, value);
        }
        for (const auto& member : value.asObject()) {
            Location header_where = where.member(member.key);
            if (member.key.empty()) {
                return header_where.error(
                    "The \"response_headers\" object must not contain an "
                    "empty header name.");
            }
            if (lowercase(member.key) == "content-length") {
                return header_where.error(
                    "The \"Content-Length\" response header cannot be "
                    "set or removed.");
            }
            if (member.value.isNull()) {
                continue;
            }
            if (!member.value.isString()) {
                return typeError(header_where, {"string", "null"}, member.value);
            }
            if (auto result = templateText(member.value.asString(), header_where); !result) {
                return result;
            }
        }
        return {};
    }

    // ---- upstreams (§4) ----

    ValidationResult upstreams(const json::Value& value, const Location& where) {
        return eachMember(
            value, where,
            [this](const json::Value& upstream, const Location& upstream_where) {
                return checkMembers(
                    upstream, upstream_where,
                    {{"servers",
                      [this](auto& v, auto& w) {
                          if (!v.isObject()) {
                              return ValidationResult(typeError(w, {"object"}, v));
                          }
                          for (const auto& server : v.asObject()) {
                              Location server_where = w.member(server.key);
                              if (auto problem = socketAddressProblem(server.key, false)) {
                                  return ValidationResult(server_where.error(
                                      "The upstream server address " + inQuotes(server.key) +
                                      " is invalid: " + *problem + "."));
                              }
                              if (auto result = checkMembers(
                                      server.value, server_where,
                                      {{"weight",
                                        [](auto& wv, auto& ww) {
                                            if (!wv.isNumber()) {
                                                return ValidationResult(
                                                    typeError(ww, {"number"}, wv));
                                            }
                                            double weight = wv.asNumber().value;
                                            if (!(weight >= 0 && weight <= 1000000)) {
                                                return ValidationResult(ww.error(
                                                    "The \"weight\" value must be between 0 "
                                                    "and 1000000."));
                                            }
                                            return ValidationResult();
                                        }}});
                                  !result) {
                                  return result;
                              }
                          }
                          return ValidationResult();
                      },
                      true}});
            },
            true);
    }

    // ---- applications (§5) ----

    ValidationResult applications(const json::Value& value, const Location& where) {
        return eachMember(
            value, where,
            [this](const json::Value& application_value, const Location& application_where) {
                return application(application_value, application_where);
            },
            true);
    }

    std::string availableTypes() const {
        if (context_.modules == nullptr || context_.modules->empty()) {
            return "No application modules are installed.";
        }
        std::vector<std::string> names;
        for (const auto& module : context_.modules->modules()) {
            std::string name = module.type + " " + module.version;
            if (!contains(names, name)) {  // two files may serve the same version
                names.push_back(std::move(name));
            }
        }
        std::string list;
        for (const auto& name : names) {
            list += (list.empty() ? "" : ", ") + name;
        }
        return "Available types: " + list + ".";
    }

    ValidationResult application(const json::Value& value, const Location& where) {
        if (!value.isObject()) {
            return typeError(where, {"object"}, value);
        }
        const json::Value* type = value.find("type");
        if (type == nullptr) {
            return where.error("Required parameter \"type\" is missing.");
        }
        Location type_where = where.member("type");
        if (!type->isString()) {
            return typeError(type_where, {"string"}, *type);
        }
        const ModuleInfo* module = findModule(context_.modules, type->asString());
        if (module == nullptr) {
            return type_where.error("Unknown application type " + inQuotes(type->asString()) +
                                    ". " + availableTypes());
        }

        std::vector<MemberRule> common = {
            {"type", stringCheck()},
            {"processes", [this](auto& v, auto& w) { return processes(v, w); }},
            {"limits",
             [this](auto& v, auto& w) {
                 return checkMembers(v, w,
                                     {{"timeout", integerIn(0, kMaxTimeout)},
                                      {"requests", integerIn(0, kMaxInt64)},
                                      {"shm", integerIn(1, kMaxInt64)}});
             }},
            {"working_directory", nonEmptyStringCheck()},
            {"user", nonEmptyStringCheck()},
            {"group", nonEmptyStringCheck()},
            {"environment", [this](auto& v, auto& w) { return environment(v, w); }},
            {"stdout", nonEmptyStringCheck()},
            {"stderr", nonEmptyStringCheck()},
            {"isolation", [this](auto& v, auto& w) { return isolation(v, w); }},
        };
        json::Object module_keys;
        for (const auto& member : value.asObject()) {
            if (!contains(kCommonApplicationKeys, member.key)) {
                module_keys.push_back(member);
                continue;
            }
            auto rule = std::find_if(
                common.begin(), common.end(),
                [&](const MemberRule& candidate) { return candidate.key == member.key; });
            if (auto result = rule->check(member.value, where.member(member.key)); !result) {
                return result;
            }
        }
        if (auto checked = checkSchema(module->schema); !checked) {
            return where.error("The module for " + inQuotes(type->asString()) + " (" +
                               module->type + " " + module->version + ", " + module->file +
                               ") has an invalid configuration schema: " + checked.error().message +
                               ".");
        }
        return validateAgainstSchema(json::Value(std::move(module_keys)), module->schema, where);
    }

    ValidationResult processes(const json::Value& value, const Location& where) {
        if (value.isInteger()) {
            return integer(value, where, 1, kMaxInt32);
        }
        if (!value.isObject()) {
            return typeError(where, {"integer", "object"}, value);
        }
        if (auto result = checkMembers(value, where,
                                       {{"max", integerIn(1, kMaxInt32)},
                                        {"spare", integerIn(0, kMaxInt32)},
                                        {"idle_timeout", integerIn(0, kMaxTimeout)}});
            !result) {
            return result;
        }
        const json::Value* max = value.find("max");
        const json::Value* spare = value.find("spare");
        int64_t max_processes = max == nullptr ? 1 : *max->asNumber().integer();
        if (spare != nullptr && *spare->asNumber().integer() > max_processes) {
            return where.member("spare").error(
                "The \"spare\" value must be less than or equal to \"max\" (" +
                std::to_string(max_processes) + (max == nullptr ? " by default" : "") + ").");
        }
        return {};
    }

    ValidationResult environment(const json::Value& value, const Location& where) {
        if (!value.isObject()) {
            return typeError(where, {"object"}, value);
        }
        for (const auto& member : value.asObject()) {
            Location variable_where = where.member(member.key);
            if (member.key.empty()) {
                return variable_where.error("An environment variable name must not be empty.");
            }
            if (member.key.find('=') != std::string::npos ||
                member.key.find('\0') != std::string::npos) {
                return variable_where.error("The environment variable name " +
                                            inQuotes(member.key) +
                                            " must not contain \"=\" or NUL.");
            }
            if (!member.value.isString()) {
                return typeError(variable_where, {"string"}, member.value);
            }
            if (member.value.asString().find('\0') != std::string::npos) {
                return variable_where.error("The environment variable " + inQuotes(member.key) +
                                            " must not contain NUL.");
            }
        }
        return {};
    }

    ValidationResult isolation(const json::Value& value, const Location& where) {
        if (!context_.features.isolation) {
            return unsupported(where, "isolation");
        }
        auto id_map = [](const json::Value& map, const Location& map_where) {
            if (!map.isArray()) {
                return ValidationResult(typeError(map_where, {"array"}, map));
            }
            for (size_t index = 0; index < map.asArray().size(); ++index) {
                if (auto result = checkMembers(map.asArray()[index], map_where.element(index),
                                               {{"container", integerIn(0, kMaxId), true},
                                                {"host", integerIn(0, kMaxId), true},
                                                {"size", integerIn(1, kMaxId), true}});
                    !result) {
                    return result;
                }
            }
            return ValidationResult();
        };
        auto bools = [](std::initializer_list<std::string_view> keys) {
            return [keys = std::vector<std::string_view>(keys)](auto& v, auto& w) {
                std::vector<MemberRule> rules;
                for (std::string_view key : keys) {
                    rules.push_back({key, booleanCheck()});
                }
                return checkMembers(v, w, rules);
            };
        };
        if (auto result = checkMembers(
                value, where,
                {
                    {"namespaces",
                     bools({"credential", "pid", "network", "mount", "uname", "cgroup"})},
                    {"uidmap", id_map},
                    {"gidmap", id_map},
                    {"rootfs",
                     [](auto& v, auto& w) {
                         if (!v.isString()) {
                             return ValidationResult(typeError(w, {"string"}, v));
                         }
                         if (!v.asString().starts_with('/') || v.asString() == "/") {
                             return ValidationResult(
                                 w.error("The \"rootfs\" value must be an absolute path other than "
                                         "\"/\"."));
                         }
                         return ValidationResult();
                     }},
                    {"automount", bools({"language_deps", "tmpfs", "procfs"})},
                    {"new_privs", booleanCheck()},
                    {"cgroup",
                     [](auto& v, auto& w) {
                         return checkMembers(
                             v, w,
                             {{"path",
                               [](auto& pv, auto& pw) {
                                   if (auto checked = nonEmptyString(pv, pw); !checked) {
                                       return checked;
                                   }
                                   std::string_view path = pv.asString();
                                   size_t start = 0;
                                   while (start <= path.size()) {
                                       size_t slash = path.find('/', start);
                                       if (path.substr(start, slash == std::string_view::npos
                                                                  ? std::string_view::npos
                                                                  : slash - start) == "..") {
                                           return ValidationResult(pw.error(
                                               "The \"path\" value must not contain \"..\" "
                                               "components."));
                                       }
                                       if (slash == std::string_view::npos) {
                                           break;
                                       }
                                       start = slash + 1;
                                   }
                                   return ValidationResult();
                               },
                               true}});
                     }},
                });
            !result) {
            return result;
        }
        const json::Value* namespaces = value.find("namespaces");
        const json::Value* credential =
            namespaces == nullptr ? nullptr : namespaces->find("credential");
        bool has_credential = credential != nullptr && credential->asBool();
        for (std::string_view map : {"uidmap", "gidmap"}) {
            if (value.find(map) != nullptr && !has_credential) {
                return where.member(map).error("The " + inQuotes(map) +
                                               " option requires the \"credential\" namespace "
                                               "to be enabled.");
            }
        }
        return {};
    }

    // ---- settings (§6) ----

    ValidationResult settings(const json::Value& value, const Location& where) {
        return checkMembers(
            value, where,
            {
                {"listen_threads", integerIn(1, kMaxInt32)},
                {"http", [this](auto& v, auto& w) { return http(v, w); }},
                {"js_module",
                 [this](auto& v, auto& w) {
                     if (!context_.features.njs) {
                         return unsupported(w, "njs");
                     }
                     return stringOrStrings(
                         v, w,
                         [this](auto& name, auto& name_where) {
                             if (!context_.js_module_exists ||
                                 !context_.js_module_exists(name.asString())) {
                                 return ValidationResult(name_where.error(
                                     "JS module " + inQuotes(name.asString()) + " is not found."));
                             }
                             return ValidationResult();
                         },
                         false);
                 }},
                {"telemetry",
                 [this](auto& v, auto& w) {
                     if (!context_.features.telemetry) {
                         return unsupported(w, "OpenTelemetry");
                     }
                     return checkMembers(
                         v, w,
                         {{"endpoint", nonEmptyStringCheck(), true},
                          {"protocol",
                           [](auto& pv, auto& pw) {
                               if (!pv.isString()) {
                                   return ValidationResult(typeError(pw, {"string"}, pv));
                               }
                               if (pv.asString() != "http" && pv.asString() != "grpc") {
                                   return ValidationResult(pw.error(
                                       "The \"protocol\" value must be \"http\" or \"grpc\"."));
                               }
                               return ValidationResult();
                           },
                           true},
                          {"batch_size", integerIn(1, kMaxInt32)},
                          {"sampling_ratio", [](auto& sv, auto& sw) {
                               if (!sv.isNumber()) {
                                   return ValidationResult(typeError(sw, {"number"}, sv));
                               }
                               double ratio = sv.asNumber().value;
                               if (!(ratio >= 0 && ratio <= 1)) {
                                   return ValidationResult(sw.error(
                                       "The \"sampling_ratio\" value must be between 0 and 1."));
                               }
                               return ValidationResult();
                           }}});
                 }},
            });
    }

    ValidationResult http(const json::Value& value, const Location& where) {
        return checkMembers(
            value, where,
            {
                {"header_read_timeout", integerIn(0, kMaxTimeout)},
                {"body_read_timeout", integerIn(0, kMaxTimeout)},
                {"send_timeout", integerIn(0, kMaxTimeout)},
                {"idle_timeout", integerIn(0, kMaxTimeout)},
                {"large_header_buffer_size", integerIn(1, kMaxInt32)},
                {"large_header_buffers", integerIn(1, kMaxInt32)},
                {"body_buffer_size", integerIn(1, kMaxInt32)},
                {"max_body_size", integerIn(0, kMaxInt64)},
                {"body_temp_path", nonEmptyStringCheck()},
                {"discard_unsafe_fields", booleanCheck()},
                {"log_route", booleanCheck()},
                {"server_version", booleanCheck()},
                {"chunked_transform", booleanCheck()},
                {"websocket",
                 [this](auto& v, auto& w) {
                     return checkMembers(v, w,
                                         {{"max_frame_size", integerIn(1, kMaxInt32)},
                                          {"read_timeout", integerIn(0, kMaxTimeout)},
                                          {"keepalive_interval", integerIn(0, kMaxTimeout)}});
                 }},
                {"static",
                 [this](auto& v, auto& w) {
                     return checkMembers(v, w, {{"mime_types", [this](auto& mv, auto& mw) {
                                                     return mimeTypes(mv, mw);
                                                 }}});
                 }},
                {"compression", [this](auto& v, auto& w) { return compression(v, w); }},
            });
    }

    ValidationResult mimeTypes(const json::Value& value, const Location& where) {
        if (!value.isObject()) {
            return typeError(where, {"object"}, value);
        }
        std::map<std::string, std::string> owner;  // lower-cased extension → MIME type
        for (const auto& member : value.asObject()) {
            Location type_where = where.member(member.key);
            if (member.key.empty()) {
                return type_where.error("A MIME type name must not be empty.");
            }
            auto extension = [&](const json::Value& text, const Location& extension_where) {
                if (text.asString().empty()) {
                    return ValidationResult(extension_where.error(
                        "The " + inQuotes(member.key) + " MIME type has an empty file extension."));
                }
                std::string key = lowercase(text.asString());
                auto [found, inserted] = owner.emplace(key, member.key);
                if (!inserted && found->second != member.key) {
                    return ValidationResult(extension_where.error(
                        "The " + inQuotes(text.asString()) +
                        " file extension has been declared for " + inQuotes(found->second) +
                        " and " + inQuotes(member.key) + " MIME types at the same time."));
                }
                return ValidationResult();
            };
            if (auto result = stringOrStrings(member.value, type_where, extension, false);
                !result) {
                return result;
            }
        }
        return {};
    }

    ValidationResult compression(const json::Value& value, const Location& where) {
        if (context_.features.compression_encodings.empty()) {
            return unsupported(where, "compression");
        }
        auto compressor = [this](const json::Value& item, const Location& item_where) {
            if (auto result = checkMembers(
                    item, item_where,
                    {{"encoding", nonEmptyStringCheck(), true},
                     {"level", integerIn(std::numeric_limits<int64_t>::min(), kMaxInt64)},
                     {"min_length", integerIn(0, kMaxInt64)}});
                !result) {
                return result;
            }
            const std::string& encoding = item.find("encoding")->asString();
            const auto& supported = context_.features.compression_encodings;
            if (!contains(supported, encoding)) {
                std::string list;
                for (const auto& name : supported) {
                    list += (list.empty() ? "" : ", ") + inQuotes(name);
                }
                return ValidationResult(
                    item_where.member("encoding")
                        .error("Unsupported compression encoding " + inQuotes(encoding) +
                               (list.empty() ? std::string(": this build has no compressors.")
                                             : "; this build supports " + list + ".")));
            }
            if (const json::Value* level = item.find("level")) {
                // The libraries' own ranges; outside them they clamp or fail at
                // run time, so refuse here.
                static const std::map<std::string, std::pair<int64_t, int64_t>> kLevels = {
                    {"gzip", {0, 9}}, {"deflate", {0, 9}}, {"br", {0, 11}}, {"zstd", {1, 22}}};
                if (auto range = kLevels.find(encoding); range != kLevels.end()) {
                    if (auto result = integer(*level, item_where.member("level"),
                                              range->second.first, range->second.second);
                        !result) {
                        return result;
                    }
                }
            }
            return ValidationResult();
        };
        return checkMembers(
            value, where,
            {{"types", patternsCheck(false)},
             {"compressors",
              [compressor](auto& v, auto& w) {
                  if (v.isObject()) {
                      return compressor(v, w);
                  }
                  if (!v.isArray()) {
                      return ValidationResult(typeError(w, {"object", "array"}, v));
                  }
                  for (size_t index = 0; index < v.asArray().size(); ++index) {
                      if (auto result = compressor(v.asArray()[index], w.element(index)); !result) {
                          return result;
                      }
                  }
                  return ValidationResult();
              },
              true}});
    }

    // ---- access log (§7) ----

    ValidationResult accessLog(const json::Value& value, const Location& where) {
        if (value.isString()) {
            return nonEmptyString(value, where);
        }
        if (!value.isObject()) {
            return typeError(where, {"string", "object"}, value);
        }
        return checkMembers(
            value, where,
            {{"path", nonEmptyStringCheck(), true},
             {"format",
              [this](auto& v, auto& w) {
                  if (v.isObject()) {
                      return eachMember(v, w, templateCheck(), true);
                  }
                  if (!v.isString()) {
                      return ValidationResult(typeError(w, {"string", "object"}, v));
                  }
                  return templateString(v, w);
              }},
             {"if", [this](auto& v, auto& w) { return condition(v, w); }}});
    }

    const json::Value& root_;
    const ValidationContext& context_;
};

}  // namespace

const ModuleInfo* findModule(const ModuleRegistry* modules, std::string_view type) {
    return modules == nullptr ? nullptr : modules->find(type);
}

ValidationResult validateConfiguration(const json::Value& root, const ValidationContext& context) {
    return Validator(root, context).run();
}

}  // namespace canopy::config
