#include "core/routing/route_table.h"

#include <algorithm>
#include <utility>

#include "core/routing/address_pattern.h"
#include "core/routing/request_target.h"

namespace canopy::routing {
namespace {

// ---- compiled match conditions ----

struct NamedPatterns {
    std::string name;
    PatternSet patterns;
};
// Every member must hold (AND).
using PatternObject = std::vector<NamedPatterns>;
// Any object may hold (OR); an empty list holds, as in Unit.
using PatternObjects = std::vector<PatternObject>;

struct Match {
    std::optional<PatternSet> method;
    std::optional<PatternSet> host;
    std::optional<PatternSet> uri;
    std::optional<PatternSet> query;
    std::optional<PatternObjects> arguments;
    std::optional<PatternObjects> headers;
    std::optional<PatternObjects> cookies;
    std::optional<Scheme> scheme;
    std::optional<AddressPatternSet> source;
    std::optional<AddressPatternSet> destination;
    std::optional<Condition> condition;
};

struct Step {
    Match match;
    Action action;
};

struct Route {
    std::string name;
    std::vector<Step> steps;
};

struct Application {
    std::string name;
    std::vector<std::string> targets;  // in configuration order
};

char lowerAscii(char character) {
    return character >= 'A' && character <= 'Z' ? static_cast<char>(character - 'A' + 'a')
                                                : character;
}

std::string lowercase(std::string_view text) {
    std::string out(text);
    for (char& character : out) {
        character = lowerAscii(character);
    }
    return out;
}

Error errorAt(const std::string& where, std::string_view message) {
    return Error{where + ": " + std::string(message)};
}

Error typeErrorAt(const std::string& where, std::string_view expected, const json::Value& value) {
    return errorAt(where,
                   "expected " + std::string(expected) + ", got " + std::string(value.typeName()));
}

// ---- matching ----

// `Item` has `name` and `value`; `same_name` compares names.
template <typename Item, typename SameName>
bool objectHolds(const PatternObject& object, std::span<const Item> items, SameName same_name) {
    for (const NamedPatterns& member : object) {
        bool present = false;
        for (const Item& item : items) {
            if (!same_name(item.name, member.name)) {
                continue;
            }
            present = true;
            // Every occurrence must satisfy the patterns.
            if (!member.patterns.matches(item.value)) {
                return false;
            }
        }
        if (!present) {
            return false;  // absent: no match, even for negative patterns
        }
    }
    return true;
}

template <typename Item, typename SameName>
bool objectsHold(const PatternObjects& objects, std::span<const Item> items, SameName same_name) {
    if (objects.empty()) {
        return true;
    }
    return std::any_of(objects.begin(), objects.end(), [&](const PatternObject& object) {
        return objectHolds(object, items, same_name);
    });
}

bool exactName(std::string_view left, std::string_view right) {
    return left == right;
}

bool matchHolds(const Match& match, const RequestView& request) {
    // Cheap scalar tests first; arguments, cookies and `if` may compute.
    if (match.method && !match.method->matches(request.method)) {
        return false;
    }
    if (match.scheme && *match.scheme != request.scheme) {
        return false;
    }
    if (match.host && !match.host->matches(request.host)) {
        return false;
    }
    if (match.uri && !match.uri->matches(request.path())) {
        return false;
    }
    if (match.source && !match.source->matches(request.remote)) {
        return false;
    }
    if (match.destination && !match.destination->matches(request.local)) {
        return false;
    }
    if (match.query && !match.query->matches(request.decodedQuery())) {
        return false;
    }
    if (match.headers && !objectsHold(*match.headers, request.headers, equalsIgnoreCase)) {
        return false;
    }
    if (match.arguments && !objectsHold(*match.arguments, request.arguments(), exactName)) {
        return false;
    }
    if (match.cookies && !objectsHold(*match.cookies, request.cookies(), exactName)) {
        return false;
    }
    if (match.condition && !match.condition->holds(request)) {
        return false;
    }
    return true;
}

// ---- compiling ----

Result<PatternSet> compilePatterns(const json::Value& value, PatternRules rules,
                                   const std::string& where) {
    if (!value.isString() && !value.isArray()) {
        return typeErrorAt(where, "a string or an array of strings", value);
    }
    auto patterns = PatternSet::compile(value, rules);
    if (!patterns) {
        return errorAt(where, patterns.error().message);
    }
    return patterns;
}

Result<PatternObjects> compilePatternObjects(const json::Value& value, PatternRules rules,
                                             bool decode_names, const std::string& where) {
    auto compileObject = [&](const json::Value& object,
                             const std::string& object_where) -> Result<PatternObject> {
        if (!object.isObject()) {
            return typeErrorAt(object_where, "an object", object);
        }
        PatternObject compiled;
        for (const json::Member& member : object.asObject()) {
            std::string member_where = object_where + "/" + member.key;
            if (member.key.empty()) {
                return errorAt(object_where, "a member name must not be empty");
            }
            std::string name = member.key;
            if (decode_names) {
                auto decoded = percentDecode(member.key, true);
                if (!decoded) {
                    return errorAt(member_where, "invalid percent-encoding in the name");
                }
                name = std::move(*decoded);
            }
            auto patterns = compilePatterns(member.value, rules, member_where);
            if (!patterns) {
                return patterns.error();
            }
            compiled.push_back({std::move(name), std::move(patterns.value())});
        }
        return compiled;
    };
    PatternObjects objects;
    if (value.isArray()) {
        for (size_t index = 0; index < value.asArray().size(); ++index) {
            auto object =
                compileObject(value.asArray()[index], where + "/" + std::to_string(index));
            if (!object) {
                return object.error();
            }
            objects.push_back(std::move(object.value()));
        }
        return objects;
    }
    auto object = compileObject(value, where);
    if (!object) {
        return object.error();
    }
    objects.push_back(std::move(object.value()));
    return objects;
}

Result<AddressPatternSet> compileAddresses(const json::Value& value, const std::string& where) {
    if (!value.isString() && !value.isArray()) {
        return typeErrorAt(where, "a string or an array of strings", value);
    }
    auto patterns = AddressPatternSet::compile(value);
    if (!patterns) {
        return errorAt(where, patterns.error().message);
    }
    return patterns;
}

Result<Template> compileTemplate(const json::Value& value, const std::string& where) {
    if (!value.isString()) {
        return typeErrorAt(where, "a string", value);
    }
    auto compiled = Template::compile(value.asString());
    if (!compiled) {
        return errorAt(where, compiled.error().message);
    }
    return compiled;
}

Result<Match> compileMatch(const json::Value& value, const std::string& where) {
    if (!value.isObject()) {
        return typeErrorAt(where, "an object", value);
    }
    Match match;
    for (const json::Member& member : value.asObject()) {
        const std::string& key = member.key;
        const json::Value& item = member.value;
        std::string item_where = where + "/" + key;
        // Each branch stores its result or returns the error.
        auto store = [&](auto& slot, auto result) -> std::optional<Error> {
            if (!result) {
                return result.error();
            }
            slot = std::move(result.value());
            return std::nullopt;
        };
        std::optional<Error> failure;
        if (key == "method") {
            failure = store(match.method, compilePatterns(item, kMethodRules, item_where));
        } else if (key == "host") {
            failure = store(match.host, compilePatterns(item, kHostRules, item_where));
        } else if (key == "uri") {
            failure = store(match.uri, compilePatterns(item, kUriRules, item_where));
        } else if (key == "query") {
            failure = store(match.query, compilePatterns(item, kQueryRules, item_where));
        } else if (key == "arguments") {
            failure = store(match.arguments,
                            compilePatternObjects(item, kArgumentRules, true, item_where));
        } else if (key == "headers") {
            failure =
                store(match.headers, compilePatternObjects(item, kHeaderRules, false, item_where));
        } else if (key == "cookies") {
            failure =
                store(match.cookies, compilePatternObjects(item, kCookieRules, false, item_where));
        } else if (key == "scheme") {
            if (!item.isString()) {
                return typeErrorAt(item_where, "a string", item);
            }
            std::string scheme = lowercase(item.asString());
            if (scheme == "http") {
                match.scheme = Scheme::Http;
            } else if (scheme == "https") {
                match.scheme = Scheme::Https;
            } else {
                return errorAt(item_where, "expected \"http\" or \"https\"");
            }
        } else if (key == "source") {
            failure = store(match.source, compileAddresses(item, item_where));
        } else if (key == "destination") {
            failure = store(match.destination, compileAddresses(item, item_where));
        } else if (key == "if") {
            if (!item.isString()) {
                return typeErrorAt(item_where, "a string", item);
            }
            auto condition = Condition::compile(item.asString());
            if (!condition) {
                return errorAt(item_where, condition.error().message);
            }
            match.condition = std::move(condition.value());
        } else {
            return errorAt(item_where, "unknown match option");
        }
        if (failure) {
            return *failure;
        }
    }
    return match;
}

// What compiling an action needs to know about the rest of the tree.
struct PassContext {
    const json::Value* routes = nullptr;
    const std::vector<Application>* applications = nullptr;
    const std::vector<std::string>* upstreams = nullptr;
};

PassTarget resolveAgainst(std::string_view text, const PassContext& context) {
    PassTarget target = parsePassSyntax(text);
    switch (target.kind) {
        case PassTarget::Kind::Invalid:
            return target;
        case PassTarget::Kind::Route: {
            const json::Value* routes = context.routes;
            bool exists = target.name.empty() ? routes != nullptr && routes->isArray()
                                              : routes != nullptr && routes->isObject() &&
                                                    routes->find(target.name) != nullptr;
            return exists ? target : PassTarget{};
        }
        case PassTarget::Kind::Application: {
            for (const Application& application : *context.applications) {
                if (application.name != target.name) {
                    continue;
                }
                if (target.target.empty()) {
                    if (!application.targets.empty()) {
                        target.target = application.targets.front();
                    }
                    return target;
                }
                bool known = std::find(application.targets.begin(), application.targets.end(),
                                       target.target) != application.targets.end();
                return known ? target : PassTarget{};
            }
            return PassTarget{};
        }
        case PassTarget::Kind::Upstream: {
            const auto& upstreams = *context.upstreams;
            bool known =
                std::find(upstreams.begin(), upstreams.end(), target.name) != upstreams.end();
            return known ? target : PassTarget{};
        }
    }
    return PassTarget{};
}

Result<Action> compileAction(const json::Value& value, const std::string& where,
                             const PassContext& context, int depth);

Result<ShareAction> compileShare(const json::Value& action, const std::string& where,
                                 const PassContext& context, int depth) {
    ShareAction share;
    const json::Value& paths = *action.find("share");
    std::string paths_where = where + "/share";
    if (paths.isString()) {
        auto path = compileTemplate(paths, paths_where);
        if (!path) {
            return path.error();
        }
        share.paths.push_back(std::move(path.value()));
    } else if (paths.isArray() && !paths.asArray().empty()) {
        for (size_t index = 0; index < paths.asArray().size(); ++index) {
            auto path =
                compileTemplate(paths.asArray()[index], paths_where + "/" + std::to_string(index));
            if (!path) {
                return path.error();
            }
            share.paths.push_back(std::move(path.value()));
        }
    } else {
        return typeErrorAt(paths_where, "a string or a non-empty array of strings", paths);
    }
    if (const json::Value* index = action.find("index")) {
        if (!index->isString() || index->asString().empty()) {
            return errorAt(where + "/index", "expected a non-empty string");
        }
        share.index = index->asString();
    }
    if (const json::Value* types = action.find("types")) {
        auto patterns = compilePatterns(*types, kMimeTypeRules, where + "/types");
        if (!patterns) {
            return patterns.error();
        }
        share.types = std::move(patterns.value());
    }
    if (const json::Value* chroot = action.find("chroot")) {
        auto compiled = compileTemplate(*chroot, where + "/chroot");
        if (!compiled) {
            return compiled.error();
        }
        share.chroot = std::move(compiled.value());
    }
    for (auto [key, slot] : {std::pair{"follow_symlinks", &share.follow_symlinks},
                             std::pair{"traverse_mounts", &share.traverse_mounts}}) {
        if (const json::Value* flag = action.find(key)) {
            if (!flag->isBool()) {
                return typeErrorAt(where + "/" + key, "a boolean", *flag);
            }
            *slot = flag->asBool();
        }
    }
    if (const json::Value* fallback = action.find("fallback")) {
        auto compiled = compileAction(*fallback, where + "/fallback", context, depth + 1);
        if (!compiled) {
            return compiled.error();
        }
        share.fallback = std::make_shared<const Action>(std::move(compiled.value()));
    }
    return share;
}

Result<Action> compileAction(const json::Value& value, const std::string& where,
                             const PassContext& context, int depth) {
    // JSON nesting is bounded by the parser, but a tree built in code is
    // not; the bound keeps the recursion (and the stack) finite.
    if (depth > 64) {
        return errorAt(where, "\"fallback\" actions nest too deeply");
    }
    if (!value.isObject()) {
        return typeErrorAt(where, "an object", value);
    }
    static constexpr std::string_view kHandlers[] = {"pass", "return", "share", "proxy"};
    static constexpr std::string_view kShareKeys[] = {
        "index", "types", "fallback", "chroot", "follow_symlinks", "traverse_mounts"};
    std::string_view handler;
    for (std::string_view candidate : kHandlers) {
        if (value.find(candidate) != nullptr) {
            if (!handler.empty()) {
                return errorAt(where,
                               "an action has only one of \"pass\", \"return\", "
                               "\"share\" or \"proxy\"");
            }
            handler = candidate;
        }
    }
    if (handler.empty()) {
        return errorAt(where,
                       "an action needs one of \"pass\", \"return\", \"share\" or \"proxy\"");
    }
    for (const json::Member& member : value.asObject()) {
        std::string_view key = member.key;
        bool known =
            std::find(std::begin(kHandlers), std::end(kHandlers), key) != std::end(kHandlers) ||
            key == "rewrite" || key == "response_headers";
        bool share_key =
            std::find(std::begin(kShareKeys), std::end(kShareKeys), key) != std::end(kShareKeys);
        if (share_key && handler != "share") {
            return errorAt(where + "/" + member.key, "allowed only with \"share\"");
        }
        if (key == "location" && handler != "return") {
            return errorAt(where + "/" + member.key, "allowed only with \"return\"");
        }
        if (!known && !share_key && key != "location") {
            return errorAt(where + "/" + member.key, "unknown action option");
        }
    }

    Action action;
    if (handler == "pass") {
        auto destination = compileTemplate(*value.find("pass"), where + "/pass");
        if (!destination) {
            return destination.error();
        }
        PassAction pass{std::move(destination.value()), std::nullopt};
        if (pass.destination.isConstant()) {
            PassTarget target = resolveAgainst(pass.destination.text(), context);
            if (target.kind == PassTarget::Kind::Invalid) {
                return errorAt(where + "/pass",
                               "\"" + pass.destination.text() + "\" points to an invalid location");
            }
            pass.resolved = std::move(target);
        }
        action.handler = std::move(pass);
    } else if (handler == "return") {
        const json::Value& status = *value.find("return");
        std::optional<int64_t> code =
            status.isNumber() ? status.asNumber().integer() : std::nullopt;
        if (!code || *code < 0 || *code > 999) {
            return errorAt(where + "/return", "expected an integer from 0 to 999");
        }
        ReturnAction result{static_cast<int>(*code), std::nullopt};
        if (const json::Value* location = value.find("location")) {
            auto compiled = compileTemplate(*location, where + "/location");
            if (!compiled) {
                return compiled.error();
            }
            result.location = std::move(compiled.value());
        }
        action.handler = std::move(result);
    } else if (handler == "share") {
        auto share = compileShare(value, where, context, depth);
        if (!share) {
            return share.error();
        }
        action.handler = std::move(share.value());
    } else {
        const json::Value& proxy = *value.find("proxy");
        if (!proxy.isString() || !proxy.asString().starts_with("http://") ||
            proxy.asString().size() == 7) {
            return errorAt(where + "/proxy", "expected \"http://ADDRESS\"");
        }
        action.handler = ProxyAction{proxy.asString().substr(7)};
    }

    if (const json::Value* rewrite = value.find("rewrite")) {
        auto compiled = compileTemplate(*rewrite, where + "/rewrite");
        if (!compiled) {
            return compiled.error();
        }
        action.rewrite = std::move(compiled.value());
    }
    if (const json::Value* headers = value.find("response_headers")) {
        std::string headers_where = where + "/response_headers";
        if (!headers->isObject()) {
            return typeErrorAt(headers_where, "an object", *headers);
        }
        for (const json::Member& member : headers->asObject()) {
            std::string member_where = headers_where + "/" + member.key;
            if (member.key.empty() || equalsIgnoreCase(member.key, "Content-Length")) {
                return errorAt(member_where, "this header cannot be set or removed");
            }
            ResponseHeaderChange change{member.key, std::nullopt};
            if (!member.value.isNull()) {
                auto compiled = compileTemplate(member.value, member_where);
                if (!compiled) {
                    return compiled.error();
                }
                change.value = std::move(compiled.value());
            }
            action.response_headers.push_back(std::move(change));
        }
    }
    return action;
}

Result<std::vector<Step>> compileSteps(const json::Value& value, const std::string& where,
                                       const PassContext& context) {
    if (!value.isArray()) {
        return typeErrorAt(where, "an array", value);
    }
    std::vector<Step> steps;
    steps.reserve(value.asArray().size());
    for (size_t index = 0; index < value.asArray().size(); ++index) {
        const json::Value& step = value.asArray()[index];
        std::string step_where = where + "/" + std::to_string(index);
        if (!step.isObject()) {
            return typeErrorAt(step_where, "an object", step);
        }
        for (const json::Member& member : step.asObject()) {
            if (member.key != "match" && member.key != "action") {
                return errorAt(step_where + "/" + member.key, "unknown route step option");
            }
        }
        Step compiled;
        if (const json::Value* match = step.find("match")) {
            auto result = compileMatch(*match, step_where + "/match");
            if (!result) {
                return result.error();
            }
            compiled.match = std::move(result.value());
        }
        const json::Value* action = step.find("action");
        if (action == nullptr) {
            return errorAt(step_where, "a route step needs an \"action\"");
        }
        auto result = compileAction(*action, step_where + "/action", context, 0);
        if (!result) {
            return result.error();
        }
        compiled.action = std::move(result.value());
        steps.push_back(std::move(compiled));
    }
    return steps;
}

}  // namespace

struct RouteTable::Data {
    std::vector<Route> routes;  // the array form is one route named ""
    bool array_form = false;
    bool named_form = false;
    std::vector<Application> applications;
    std::vector<std::string> upstreams;

    const Route* find(std::string_view name) const {
        for (const Route& route : routes) {
            if (route.name == name) {
                return &route;
            }
        }
        return nullptr;
    }
};

PassTarget parsePassSyntax(std::string_view text) {
    std::vector<std::string> segments;
    size_t start = 0;
    while (true) {
        size_t slash = text.find('/', start);
        std::string_view raw = text.substr(
            start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
        auto decoded = percentDecode(raw);
        if (!decoded) {
            return PassTarget{};
        }
        segments.push_back(std::move(*decoded));
        if (slash == std::string_view::npos || segments.size() > 3) {
            break;
        }
        start = slash + 1;
    }
    if (segments.size() > 3 ||
        std::any_of(segments.begin() + 1, segments.end(), [](auto& s) { return s.empty(); })) {
        return PassTarget{};
    }
    const std::string& kind = segments[0];
    if (kind == "routes" && segments.size() <= 2) {
        return PassTarget{PassTarget::Kind::Route, segments.size() == 2 ? segments[1] : "", ""};
    }
    if (kind == "applications" && segments.size() >= 2) {
        return PassTarget{PassTarget::Kind::Application, segments[1],
                          segments.size() == 3 ? segments[2] : ""};
    }
    if (kind == "upstreams" && segments.size() == 2) {
        return PassTarget{PassTarget::Kind::Upstream, segments[1], ""};
    }
    return PassTarget{};
}

RouteTable::RouteTable() : data_(std::make_shared<const Data>()) {}

Result<RouteTable> RouteTable::compile(const json::Value& configuration) {
    if (!configuration.isObject()) {
        return typeErrorAt("configuration", "an object", configuration);
    }
    auto data = std::make_shared<Data>();

    if (const json::Value* applications = configuration.find("applications")) {
        if (!applications->isObject()) {
            return typeErrorAt("applications", "an object", *applications);
        }
        for (const json::Member& member : applications->asObject()) {
            Application application{member.key, {}};
            const json::Value* targets =
                member.value.isObject() ? member.value.find("targets") : nullptr;
            if (targets != nullptr && targets->isObject()) {
                for (const json::Member& target : targets->asObject()) {
                    application.targets.push_back(target.key);
                }
            }
            data->applications.push_back(std::move(application));
        }
    }
    if (const json::Value* upstreams = configuration.find("upstreams")) {
        if (!upstreams->isObject()) {
            return typeErrorAt("upstreams", "an object", *upstreams);
        }
        for (const json::Member& member : upstreams->asObject()) {
            data->upstreams.push_back(member.key);
        }
    }

    const json::Value* routes = configuration.find("routes");
    PassContext context{routes, &data->applications, &data->upstreams};
    if (routes == nullptr) {
        return RouteTable(std::move(data));
    }
    if (routes->isArray()) {
        auto steps = compileSteps(*routes, "routes", context);
        if (!steps) {
            return steps.error();
        }
        data->array_form = true;
        data->routes.push_back(Route{"", std::move(steps.value())});
    } else if (routes->isObject()) {
        data->named_form = true;
        for (const json::Member& member : routes->asObject()) {
            if (member.key.empty()) {
                return errorAt("routes", "a route name must not be empty");
            }
            auto steps = compileSteps(member.value, "routes/" + member.key, context);
            if (!steps) {
                return steps.error();
            }
            data->routes.push_back(Route{member.key, std::move(steps.value())});
        }
    } else {
        return typeErrorAt("routes", "an array or an object", *routes);
    }
    return RouteTable(std::move(data));
}

const Action* RouteTable::match(std::string_view route_name, const RequestView& request) const {
    const Route* route = data_->find(route_name);
    if (route == nullptr) {
        return nullptr;
    }
    for (const Step& step : route->steps) {
        if (matchHolds(step.match, request)) {
            return &step.action;
        }
    }
    return nullptr;
}

bool RouteTable::hasRoute(std::string_view route_name) const {
    return data_->find(route_name) != nullptr;
}

PassTarget RouteTable::resolvePass(std::string_view text) const {
    PassTarget target = parsePassSyntax(text);
    if (target.kind == PassTarget::Kind::Route) {
        return hasRoute(target.name) ? target : PassTarget{};
    }
    // Applications and upstreams are checked against the names seen at
    // compile time, like routes; resolveAgainst needs no `routes` for them.
    PassContext context{nullptr, &data_->applications, &data_->upstreams};
    return resolveAgainst(text, context);
}

PassTarget RouteTable::resolvePass(const PassAction& action, const RequestView& request) const {
    if (action.resolved) {
        return *action.resolved;
    }
    return resolvePass(action.destination.evaluate(request));
}

Result<void> applyRewrite(const Action& action, RequestView& request) {
    if (!action.rewrite) {
        return {};
    }
    std::string value = action.rewrite->evaluate(request);
    TargetParts parts = splitTarget(value);
    auto path = normalizePath(parts.path);
    if (auto* error = std::get_if<PathError>(&path)) {
        return Error{"rewrite to \"" + value + "\": " + std::string(pathErrorText(*error))};
    }
    request.setPath(std::move(std::get<std::string>(path)));
    return {};
}

void applyResponseHeaders(const Action& action, const RequestView& request, int status,
                          std::vector<HeaderField>& headers) {
    if (action.response_headers.empty() || status < 200 || status > 399) {
        return;
    }
    // Evaluate everything before changing anything: $response_header_*
    // reads the headers as they were.
    std::vector<std::optional<std::string>> values;
    values.reserve(action.response_headers.size());
    for (const ResponseHeaderChange& change : action.response_headers) {
        values.push_back(change.value ? std::optional<std::string>(change.value->evaluate(request))
                                      : std::nullopt);
    }
    for (size_t index = 0; index < action.response_headers.size(); ++index) {
        const std::string& name = action.response_headers[index].name;
        auto same = [&](const HeaderField& field) { return equalsIgnoreCase(field.name, name); };
        if (!values[index]) {
            std::erase_if(headers, same);
            continue;
        }
        auto found = std::find_if(headers.begin(), headers.end(), same);
        if (found != headers.end()) {
            found->value = std::move(*values[index]);
        } else {
            headers.push_back({name, std::move(*values[index])});
        }
    }
}

}  // namespace canopy::routing
