#pragma once

// Template strings (tstr, config-schema §9): text with `$name` or `${name}`
// variables, compiled once into literal and variable parts and evaluated per
// request. Only the variables a template names are computed. Immutable
// once compiled; evaluate from any thread (each call with its own view).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "core/routing/request_view.h"

namespace canopy::routing {

enum class Variable : uint8_t {
    Dollar,          // "$"
    Method,          // request method
    RequestUri,      // request-target as received
    Uri,             // decoded, normalized path (after rewrite)
    Host,            // normalized Host
    RemoteAddr,      // client address text
    RequestLine,     // first request line
    RequestId,       // 32 random hex digits, stable per request
    RequestTime,     // seconds since the start, "S.mmm"
    TimeLocal,       // "DD/Mon/YYYY:HH:MM:SS +ZZZZ"
    Status,          // 3 digits, "" while unknown
    BodyBytesSent,   // decimal
    Header,          // $header_NAME: first request header, '_' = '-', case-insensitive
    Argument,        // $arg_NAME: last query argument, decoded
    Cookie,          // $cookie_NAME
    ResponseHeader,  // $response_header_NAME: first response header, '_' = '-'
};

class Template {
  public:
    // Fails on a '$' not followed by a name or a well-formed "{name}", and on
    // unknown names ("Unknown variable ..."), as validation does. Names are
    // ASCII letters and '_': "$arg_v2" is $arg_v then "2".
    static Result<Template> compile(std::string_view text);
    // A template whose text is used as is ('$' is literal): for keys where
    // the spec allows no variables.
    static Template literal(std::string_view text);

    Template() = default;  // empty text

    // True when there are no variables: evaluation gives text().
    bool isConstant() const { return constant_; }
    // The source text.
    const std::string& text() const { return text_; }
    // Whether the template names `variable` (e.g. the engine needs response
    // data only for templates that use $status or $response_header_*).
    bool uses(Variable variable) const {
        return (used_ & (1u << static_cast<unsigned>(variable))) != 0;
    }

    // Appends the value for `request` to `out`. A variable whose value is
    // empty is written as `empty_value` (the access log passes "-").
    void appendTo(const RequestView& request, std::string& out,
                  std::string_view empty_value = {}) const;
    std::string evaluate(const RequestView& request) const;

  private:
    struct Part {
        bool literal = true;
        Variable variable = Variable::Dollar;
        // Literal text, or the NAME of a $header_/$arg_/$cookie_/
        // $response_header_ variable ('_' already turned into '-' for
        // headers).
        std::string text;
    };

    std::string text_;
    std::vector<Part> parts_;
    bool constant_ = true;
    uint32_t used_ = 0;
};

// True unless `value` is "", "0", "false", "null" or "undefined": the truth
// of `match.if` and `access_log.if`.
bool isTruthy(std::string_view value);

// A condition (`match.if`, `access_log.if`): a template with an optional
// leading '!' that inverts it.
class Condition {
  public:
    static Result<Condition> compile(std::string_view text);
    bool holds(const RequestView& request) const;

  private:
    Template template_;
    bool negated_ = false;
};

}  // namespace canopy::routing
