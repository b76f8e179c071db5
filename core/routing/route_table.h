#pragma once

// The `routes` of a configuration (config-schema §3) compiled once into an
// immutable table: match conditions become compiled patterns, action
// strings become templates, and `pass` values without variables are
// resolved against the configuration's routes, applications and upstreams.
// A RouteTable is cheap to copy (shared, immutable data) and may be matched
// by any number of threads at once.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/base/result.h"
#include "core/json/value.h"
#include "core/routing/pattern.h"
#include "core/routing/request_view.h"
#include "core/routing/template.h"

namespace canopy::routing {

// Where a `pass` leads.
struct PassTarget {
    enum class Kind : uint8_t {
        Invalid,      // bad syntax or nothing of that name: the engine answers 404
        Route,        // `name` is a route; "" is the array form ("routes")
        Application,  // `name` is an application, `target` its target ("" when it has none)
        Upstream,     // `name` is an upstream
    };
    Kind kind = Kind::Invalid;
    std::string name;
    std::string target;

    bool operator==(const PassTarget& other) const = default;
};

// The syntax of a pass value alone: "routes", "routes/NAME",
// "applications/NAME", "applications/NAME/TARGET", "upstreams/NAME";
// segments are percent-decoded. Nothing is checked for existence and an
// omitted application target stays "".
PassTarget parsePassSyntax(std::string_view text);

struct Action;

// "pass": a template, resolved per request unless it is constant.
struct PassAction {
    Template destination;
    // Set at compile time when `destination` is constant.
    std::optional<PassTarget> resolved;
};

// "return" with its optional "location".
struct ReturnAction {
    int status = 0;                    // 0-999
    std::optional<Template> location;  // send through encodeLocation()
};

// "share" and its companions, kept as data for the static-files handler.
struct ShareAction {
    std::vector<Template> paths;  // tried in order
    std::optional<Template> chroot;
    std::string index = "index.html";
    std::optional<PatternSet> types;  // MIME type patterns, case-insensitive
    bool follow_symlinks = true;
    bool traverse_mounts = true;
    std::shared_ptr<const Action> fallback;  // null when absent
};

// "proxy", kept as data for the proxy handler: the text after "http://"
// ("127.0.0.1:8080", "[::1]:8080", "unix:/path").
struct ProxyAction {
    std::string address;
};

// One "response_headers" member: set to `value`, or remove when null.
struct ResponseHeaderChange {
    std::string name;
    std::optional<Template> value;
};

struct Action {
    std::variant<PassAction, ReturnAction, ShareAction, ProxyAction> handler;
    std::optional<Template> rewrite;
    std::vector<ResponseHeaderChange> response_headers;
};

class RouteTable {
  public:
    // An empty table: no routes at all.
    RouteTable();

    // Compiles `configuration`, the whole /config tree (for `routes` and, to
    // resolve passes, `applications` and `upstreams`). Expects a tree that
    // passed validation, but any tree is handled: what it cannot use is an
    // error naming the place ("routes/main/0/match/uri: ..."), never a crash.
    // Also refused here, as by Unit when applying: a step without "action".
    static Result<RouteTable> compile(const json::Value& configuration);

    // The action of the first step of route `route_name` ("" for the array
    // form) whose match holds for `request`; nullptr when none does or there
    // is no such route (the engine answers 404). The pointer lives as long as
    // any copy of this table. Thread-safe; allocates only for `if`
    // conditions and the request's first look at its arguments or cookies.
    const Action* match(std::string_view route_name, const RequestView& request) const;

    bool hasRoute(std::string_view route_name) const;

    // Resolves a pass value (after template evaluation) against this
    // configuration: Invalid when the syntax is wrong or the route,
    // application, application target or upstream does not exist. An
    // application without a target becomes its first target, if it has any.
    PassTarget resolvePass(std::string_view text) const;
    // The pass of `action` for `request`: the compiled result when constant,
    // else the template evaluated and resolved. Counting hops (at most 255)
    // is the caller's business.
    PassTarget resolvePass(const PassAction& action, const RequestView& request) const;

  private:
    struct Data;
    explicit RouteTable(std::shared_ptr<const Data> data) : data_(std::move(data)) {}
    std::shared_ptr<const Data> data_;
};

// Applies `action.rewrite`, if any, to `request`: the value is parsed like a
// request-target, its query ignored, its path decoded and normalized, and
// the result becomes the new $uri. $request_uri is unchanged. An error
// (a path that normalizePath() refuses) means 400.
Result<void> applyRewrite(const Action& action, RequestView& request);

// A response header the engine owns.
struct HeaderField {
    std::string name;
    std::string value;
};

// Applies `action.response_headers` to `headers` when `status` is 2xx or
// 3xx: every value is evaluated first (so $response_header_* reads the
// headers before any change; `request.response.headers` must show them),
// then a value replaces the first header of that name (ASCII
// case-insensitive) or is appended, and null removes every header of that
// name.
void applyResponseHeaders(const Action& action, const RequestView& request, int status,
                          std::vector<HeaderField>& headers);

}  // namespace canopy::routing
