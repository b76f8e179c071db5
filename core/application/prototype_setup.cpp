#include "core/application/prototype_setup.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/base/log.h"
#include "core/discovery/module_probe.h"
#include "core/process/credentials.h"

namespace canopy {
namespace {

// Module log levels share log::Level's order; anything else is info.
log::Level levelOf(canopy_log_level_t level) {
    int value = static_cast<int>(level);
    if (value < static_cast<int>(log::Level::Alert) ||
        value > static_cast<int>(log::Level::Debug)) {
        return log::Level::Info;
    }
    return static_cast<log::Level>(value);
}

void hostLog(canopy_task_t* task, canopy_log_level_t level, const char* message) {
    auto* host = task != nullptr ? static_cast<ModuleHost*>(task->host_context) : nullptr;
    std::string text = message != nullptr ? message : "(null)";
    if (host == nullptr) {
        log::write(levelOf(level), text);
        return;
    }
    if (levelOf(level) <= log::Level::Error) {
        std::lock_guard guard(host->lock);
        if (host->in_setup) {
            host->last_error = text;
        }
    }
    log::write(levelOf(level), fmt::format("\"{}\": {}", host->app, text));
}

const std::string* optionalString(const nlohmann::json& conf, std::string_view key) {
    auto found = conf.find(key);
    return found != conf.end() && found->is_string() ? found->get_ptr<const std::string*>()
                                                     : nullptr;
}

Result<void> loadModule(PreparedApplication& application, const std::string& file) {
    // RTLD_GLOBAL, as in discovery: a language's own C extensions, loaded
    // later by the runtime, need the runtime's symbols.
    void* handle = ::dlopen(file.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (handle == nullptr) {
        const char* reason = ::dlerror();
        return Error{fmt::format("cannot load the module \"{}\": {}", file,
                                 reason != nullptr ? reason : "unknown error")};
    }
    // Never dlclose()d: the runtime lives as long as the process.
    ::dlerror();
    void* symbol = ::dlsym(handle, CANOPY_MODULE_SYMBOL);
    if (symbol == nullptr) {
        return Error{
            fmt::format("the module \"{}\" does not export `{}`", file, CANOPY_MODULE_SYMBOL)};
    }
    const auto* module = static_cast<const canopy_module_t*>(symbol);
    // The file may have changed since discovery checked it.
    if (auto described = describeModule(module, file); !described) {
        return Error{
            fmt::format("the module \"{}\" cannot be used: {}", file, described.error().message)};
    }
    application.module = module;
    return {};
}

Result<void> applyEnvironment(const nlohmann::json& conf) {
    auto environment = conf.find("environment");
    if (environment == conf.end()) {
        return {};
    }
    if (!environment->is_object()) {
        return Error{"\"environment\" must be an object of strings"};
    }
    for (const auto& [name, value] : environment->items()) {
        if (!value.is_string()) {
            return Error{fmt::format("the environment variable \"{}\" must be a string", name)};
        }
        if (name.empty() || name.find('=') != std::string::npos) {
            return Error{fmt::format("invalid environment variable name \"{}\"", name)};
        }
        if (::setenv(name.c_str(), value.get_ref<const std::string&>().c_str(), 1) != 0) {
            return systemError(fmt::format("setenv(\"{}\")", name));
        }
    }
    return {};
}

Result<void> runModuleSetup(PreparedApplication& application) {
    if (application.module == nullptr || application.module->setup == nullptr) {
        return {};
    }
    canopy_process_t process{};
    process.size = sizeof(process);
    process.app_name = application.app.c_str();
    process.pid = ::getpid();
    {
        std::lock_guard guard(application.host.lock);
        application.host.in_setup = true;
    }
    int outcome = application.module->setup(&application.task, &process, &application.module_conf);
    std::string last_error;
    {
        std::lock_guard guard(application.host.lock);
        application.host.in_setup = false;
        last_error = std::move(application.host.last_error);
    }
    if (outcome == CANOPY_OK) {
        return {};
    }
    std::string module_name = application.module->type != nullptr ? application.module->type : "";
    if (last_error.empty()) {
        return Error{fmt::format("the {} module could not set the application up", module_name)};
    }
    return Error{
        fmt::format("the {} module could not set the application up: {}", module_name, last_error)};
}

Result<UniqueFd> openOutput(const std::string& path, std::string_view key) {
    UniqueFd file(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
    if (!file) {
        return Error{
            fmt::format("cannot open the {} file \"{}\": {}", key, path, std::strerror(errno)),
            errno};
    }
    return file;
}

Result<void> openOutputs(PreparedApplication& application, const nlohmann::json& conf) {
    if (const std::string* path = optionalString(conf, "stdout")) {
        auto opened = openOutput(*path, "stdout");
        if (!opened) {
            return opened.error();
        }
        application.stdout_file = std::move(*opened);
    }
    if (const std::string* path = optionalString(conf, "stderr")) {
        auto opened = openOutput(*path, "stderr");
        if (!opened) {
            return opened.error();
        }
        application.stderr_file = std::move(*opened);
    }
    // Whatever the prototype itself prints (a runtime's warnings) lands in
    // the daemon's log instead of main's stdout, which is /dev/null.
    ::dup2(STDERR_FILENO, STDOUT_FILENO);
    return {};
}

Result<void> changeDirectory(const nlohmann::json& conf) {
    const std::string* directory = optionalString(conf, "working_directory");
    if (directory == nullptr) {
        return {};  // main's working directory
    }
    if (::chdir(directory->c_str()) != 0) {
        return Error{fmt::format("cannot change to the working directory \"{}\": {}", *directory,
                                 std::strerror(errno)),
                     errno};
    }
    return {};
}

// The credentials the application runs with: `user` (its primary group
// unless `group` is given), else the daemon's --user/--group with `group`
// overriding the group. Absent: stay as is.
Result<std::optional<Credentials>> applicationCredentials(
    const nlohmann::json& conf, const std::optional<Credentials>& daemon_user) {
    const std::string* user = optionalString(conf, "user");
    const std::string* group = optionalString(conf, "group");
    if (!daemon_user) {
        // canopyd is not root: only its own identity is possible.
        if (user != nullptr) {
            auto wanted = resolveCredentials(*user, std::string());
            if (!wanted) {
                return wanted.error();
            }
            if (wanted->uid != ::geteuid()) {
                return Error{
                    fmt::format("cannot run as user \"{}\": canopyd does not run as root", *user)};
            }
        }
        if (group != nullptr) {
            auto gid = resolveGroup(*group);
            if (!gid) {
                return gid.error();
            }
            if (*gid != ::getegid()) {
                return Error{fmt::format("cannot run as group \"{}\": canopyd does not run as root",
                                         *group)};
            }
        }
        return std::optional<Credentials>();
    }
    if (user != nullptr) {
        auto resolved = resolveCredentials(*user, group != nullptr ? *group : std::string());
        if (!resolved) {
            return resolved.error();
        }
        return std::optional<Credentials>(*resolved);
    }
    Credentials credentials = *daemon_user;
    if (group != nullptr) {
        auto gid = resolveGroup(*group);
        if (!gid) {
            return gid.error();
        }
        credentials.group = *group;
        credentials.gid = *gid;
    }
    return std::optional<Credentials>(credentials);
}

Result<void> findExecutable(PreparedApplication& application, const nlohmann::json& conf) {
    const std::string* executable = optionalString(conf, "executable");
    if (executable == nullptr || executable->empty()) {
        return Error{"an external application needs an \"executable\""};
    }
    std::filesystem::path path(*executable);
    if (path.is_relative()) {
        // Relative to working_directory, which is the current directory by now.
        std::error_code ec;
        auto here = std::filesystem::current_path(ec);
        if (!ec) {
            path = here / path;
        }
    }
    application.executable = path.lexically_normal().string();
    struct stat status {};
    if (::stat(application.executable.c_str(), &status) != 0) {
        return Error{fmt::format("the executable \"{}\" cannot be found: {}",
                                 application.executable, std::strerror(errno)),
                     errno};
    }
    if (!S_ISREG(status.st_mode)) {
        return Error{
            fmt::format("the executable \"{}\" is not a regular file", application.executable)};
    }
    if (::access(application.executable.c_str(), X_OK) != 0) {
        return Error{fmt::format("the executable \"{}\" is not executable by uid {}: {}",
                                 application.executable, ::getuid(), std::strerror(errno)),
                     errno};
    }
    if (auto arguments = conf.find("arguments"); arguments != conf.end()) {
        if (!arguments->is_array()) {
            return Error{"\"arguments\" must be an array of strings"};
        }
        for (const auto& argument : *arguments) {
            if (!argument.is_string()) {
                return Error{"\"arguments\" must be an array of strings"};
            }
            application.arguments.push_back(argument.get<std::string>());
        }
    }
    return {};
}

}  // namespace

std::string serializePrototypeData(const PrototypeData& data) {
    nlohmann::json document = {{"app", data.app},
                               {"generation", data.generation},
                               {"conf", data.conf},
                               {"module", data.module_file}};
    return document.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<PrototypeData> parsePrototypeData(std::string_view text) {
    auto document = nlohmann::json::parse(text, nullptr, false);
    try {
        if (document.is_discarded()) {
            throw std::invalid_argument("not JSON");
        }
        PrototypeData data;
        data.app = document.at("app").get<std::string>();
        data.generation = document.at("generation").get<uint64_t>();
        data.conf = document.at("conf");
        data.module_file = document.at("module").get<std::string>();
        if (!data.conf.is_object()) {
            throw std::invalid_argument("conf is not an object");
        }
        return data;
    } catch (const std::exception& failure) {
        return Error{fmt::format("malformed prototype data from main: {}", failure.what())};
    }
}

Result<std::unique_ptr<PreparedApplication>> prepareApplication(
    const PrototypeData& data, const std::optional<Credentials>& daemon_user) {
    auto application = std::make_unique<PreparedApplication>();
    application->app = data.app;
    application->generation = data.generation;
    application->conf_json =
        data.conf.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    application->host.app = data.app;
    application->task.size = sizeof(canopy_task_t);
    application->task.host_context = &application->host;
    application->task.host_log = hostLog;
    application->module_conf.size = sizeof(canopy_app_conf_t);
    application->module_conf.app_name = application->app.c_str();
    application->module_conf.json = application->conf_json.c_str();
    application->module_conf.json_length = application->conf_json.size();

    if (!data.module_file.empty()) {
        if (auto loaded = loadModule(*application, data.module_file); !loaded) {
            return loaded.error();
        }
    }
    if (auto applied = applyEnvironment(data.conf); !applied) {
        return applied.error();
    }
    if (auto set_up = runModuleSetup(*application); !set_up) {
        return set_up.error();
    }
    if (auto opened = openOutputs(*application, data.conf); !opened) {
        return opened.error();
    }
    if (auto changed = changeDirectory(data.conf); !changed) {
        return changed.error();
    }
    auto credentials = applicationCredentials(data.conf, daemon_user);
    if (!credentials) {
        return credentials.error();
    }
    if (auto dropped = dropPrivileges(*credentials); !dropped) {
        return dropped.error();
    }
    if (data.module_file.empty()) {
        if (auto found = findExecutable(*application, data.conf); !found) {
            return found.error();
        }
    }
    return application;
}

}  // namespace canopy
