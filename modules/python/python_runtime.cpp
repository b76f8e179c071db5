#include "python_runtime.h"

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "canopy/module_log.hpp"

namespace canopy::python {

namespace {

canopy::ModuleLog module_log("python");

bool isFile(const std::string& path) {
    struct stat status {};
    return ::stat(path.c_str(), &status) == 0 && S_ISREG(status.st_mode);
}

// Turns a PyStatus failure into text.
std::string statusText(const PyStatus& status, const char* step) {
    std::string text = std::string("cannot ") + step;
    if (status.func != nullptr) {
        text += std::string(" (") + status.func + ")";
    }
    if (status.err_msg != nullptr) {
        text += std::string(": ") + status.err_msg;
    }
    return text;
}

}  // namespace

namespace {

const std::string* textKey(const nlohmann::ordered_json& object, const char* key) {
    auto found = object.find(key);
    return found != object.end() && found->is_string() ? found->get_ptr<const std::string*>()
                                                       : nullptr;
}

// `module`, `callable`, `factory` and `prefix` of the application or of one
// of its targets.
std::string parseTarget(const nlohmann::ordered_json& object, PythonTarget& target) {
    if (const std::string* module = textKey(object, "module");
        module != nullptr && !module->empty()) {
        target.module = *module;
    } else {
        return target.name.empty()
                   ? "the application has no \"module\" to import"
                   : "the target \"" + target.name + "\" has no \"module\" to import";
    }
    if (const std::string* callable = textKey(object, "callable")) {
        target.callable = *callable;
    }
    if (auto factory = object.find("factory"); factory != object.end() && factory->is_boolean()) {
        target.factory = factory->get<bool>();
    }
    if (const std::string* prefix = textKey(object, "prefix")) {
        if (prefix->empty() || prefix->front() != '/') {
            return "\"prefix\" must start with \"/\"";
        }
        target.prefix = *prefix;
        while (!target.prefix.empty() && target.prefix.back() == '/') {
            target.prefix.pop_back();
        }
    }
    return {};
}

}  // namespace

std::string parseOptions(const char* json, size_t length, PythonOptions& options) {
    nlohmann::ordered_json conf;
    try {
        conf = nlohmann::ordered_json::parse(json, json + length, nullptr, true, true);
    } catch (const std::exception& error) {
        return std::string("the application's configuration is not valid JSON: ") + error.what();
    }
    if (!conf.is_object()) {
        return "the application's configuration is not a JSON object";
    }
    if (const std::string* protocol = textKey(conf, "protocol")) {
        options.protocol = *protocol;
    }
    if (auto targets = conf.find("targets"); targets != conf.end() && targets->is_object()) {
        for (const auto& [name, entry] : targets->items()) {
            PythonTarget target;
            target.name = name;
            if (!entry.is_object()) {
                return "the target \"" + name + "\" is not an object";
            }
            if (std::string problem = parseTarget(entry, target); !problem.empty()) {
                return problem;
            }
            options.targets.push_back(std::move(target));
        }
        if (options.targets.empty()) {
            return "\"targets\" names no target";
        }
    } else {
        PythonTarget target;
        if (std::string problem = parseTarget(conf, target); !problem.empty()) {
            return problem;
        }
        options.targets.push_back(std::move(target));
    }
    if (const std::string* home = textKey(conf, "home")) {
        options.home = *home;
    }
    if (auto path = conf.find("path"); path != conf.end()) {
        if (path->is_string()) {
            options.path.push_back(path->get<std::string>());
        } else if (path->is_array()) {
            for (const auto& entry : *path) {
                if (entry.is_string()) {
                    options.path.push_back(entry.get<std::string>());
                }
            }
        }
    }
    if (auto threads = conf.find("threads"); threads != conf.end() && threads->is_number()) {
        options.threads = threads->get<int>();
    }
    if (auto stack = conf.find("thread_stack_size"); stack != conf.end() && stack->is_number()) {
        auto size = stack->get<int64_t>();
        long page = ::sysconf(_SC_PAGESIZE);
        if (size < static_cast<int64_t>(PTHREAD_STACK_MIN) || (page > 0 && size % page != 0)) {
            return "\"thread_stack_size\" must be at least " + std::to_string(PTHREAD_STACK_MIN) +
                   " and a multiple of the page size (" + std::to_string(page) + ")";
        }
        options.thread_stack_size = static_cast<size_t>(size);
    }
    return {};
}

std::string startInterpreter(const PythonOptions& options) {
    PyPreConfig preconfig;
    PyPreConfig_InitIsolatedConfig(&preconfig);
    // A server has no terminal locale worth following: text is UTF-8.
    preconfig.utf8_mode = 1;
    PyStatus status = Py_PreInitialize(&preconfig);
    if (PyStatus_Exception(status)) {
        return statusText(status, "pre-initialise Python");
    }

    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    // The prototype is the parent of every worker: the signals are canopyd's.
    config.install_signal_handlers = 0;
    // Imports run before privileges are dropped; leave no root-owned
    // __pycache__ directories in the application's tree.
    config.write_bytecode = 0;
    config.parse_argv = 0;
    std::string failure;
    auto check = [&](PyStatus result, const char* step) {
        if (failure.empty() && PyStatus_Exception(result)) {
            failure = statusText(result, step);
        }
    };
    char argument[] = "canopy";
    char* arguments[] = {argument};
    check(PyConfig_SetBytesArgv(&config, 1, arguments), "set sys.argv");
    if (!options.home.empty()) {
        if (isFile(options.home + "/pyvenv.cfg")) {
            // A PEP 405 virtual environment: Python finds its prefix (and the
            // base installation's standard library) from the venv's python.
            check(PyConfig_SetBytesString(&config, &config.program_name,
                                          (options.home + "/bin/python3").c_str()),
                  "set the program name");
        } else {
            check(PyConfig_SetBytesString(&config, &config.home, options.home.c_str()),
                  "set the Python home");
        }
    } else {
        check(PyConfig_SetBytesString(&config, &config.program_name, CANOPY_PYTHON_EXECUTABLE),
              "set the program name");
    }
    if (failure.empty()) {
        check(Py_InitializeFromConfig(&config), "initialise Python");
    }
    PyConfig_Clear(&config);
    if (!failure.empty()) {
        return failure;
    }

    PyObject* sys_path = PySys_GetObject("path");  // borrowed
    if (sys_path == nullptr || !PyList_Check(sys_path)) {
        return "sys.path is not a list";
    }
    for (size_t index = options.path.size(); index-- > 0;) {
        PyObject* entry = PyUnicode_DecodeFSDefault(options.path[index].c_str());
        if (entry == nullptr || PyList_Insert(sys_path, 0, entry) != 0) {
            Py_XDECREF(entry);
            return "cannot extend sys.path: " + lastLine(takeExceptionText());
        }
        Py_DECREF(entry);
    }
    return {};
}

void setLogTask(canopy_task_t* task) {
    module_log.attach(task);
}

void logLine(canopy_log_level_t level, const std::string& message) {
    module_log.line(level, message);
}

void logLines(canopy_log_level_t level, const std::string& text) {
    module_log.lines(level, text);
}

std::string takeExceptionText() {
    PyObject* type = nullptr;
    PyObject* value = nullptr;
    PyObject* traceback = nullptr;
    PyErr_Fetch(&type, &value, &traceback);
    if (type == nullptr) {
        return "(no Python exception)";
    }
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != nullptr && value != nullptr) {
        PyException_SetTraceback(value, traceback);
    }
    std::string text;
    PyObject* module = PyImport_ImportModule("traceback");
    PyObject* lines = module != nullptr
                          ? PyObject_CallMethod(module, "format_exception", "OOO", type,
                                                value != nullptr ? value : Py_None,
                                                traceback != nullptr ? traceback : Py_None)
                          : nullptr;
    PyObject* joined = nullptr;
    if (lines != nullptr) {
        PyObject* empty = PyUnicode_FromString("");
        joined = empty != nullptr ? PyUnicode_Join(empty, lines) : nullptr;
        Py_XDECREF(empty);
    }
    const char* utf8 = joined != nullptr ? PyUnicode_AsUTF8(joined) : nullptr;
    if (utf8 != nullptr) {
        text = utf8;
    } else {
        PyErr_Clear();
        PyObject* shown = PyObject_Str(value != nullptr ? value : type);
        const char* fallback = shown != nullptr ? PyUnicode_AsUTF8(shown) : nullptr;
        text = fallback != nullptr ? fallback : "(an exception that cannot be shown)";
        Py_XDECREF(shown);
        PyErr_Clear();
    }
    Py_XDECREF(joined);
    Py_XDECREF(lines);
    Py_XDECREF(module);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    while (!text.empty() && text.back() == '\n') {
        text.pop_back();
    }
    return text;
}

std::string lastLine(const std::string& text) {
    size_t newline = text.rfind('\n');
    return newline == std::string::npos ? text : text.substr(newline + 1);
}

}  // namespace canopy::python
