// python3.11.canopy.so: the descriptor, setup() in the prototype (start
// CPython, import the application, decide WSGI or ASGI) and start() in each
// worker (attach to the router, serve on one context per thread: WSGI one
// request at a time, ASGI on an asyncio loop per thread).

#include <canopy/app.h>
#include <canopy/module.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mount.h>

#include <atomic>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "asgi_binding.h"
#include "python_runtime.h"
#include "wsgi_objects.h"
#include "wsgi_request.h"

namespace canopy::python {
namespace {

PythonOptions options;
bool serving_asgi = false;
// WSGI: one application per target, in the order of options.targets.
std::vector<WsgiApplication> wsgi_applications;
// ASGI: the canopy_asgi.Process of asgi_server.py, made in the prototype.
PyObject* asgi_process = nullptr;

// The serving thread's Python thread state while it waits in the SDK.
thread_local PyThreadState* idle_thread_state = nullptr;

std::atomic<canopy_app_t*> serving_app{nullptr};

extern "C" void quitOnSignal(int /*signal*/) {
    if (canopy_app_t* app = serving_app.load()) {
        canopy_app_quit(app);  // async-signal-safe
    }
}

void handleQuitSignals() {
    struct sigaction action {};
    action.sa_handler = &quitOnSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &action, nullptr);
    sigaction(SIGINT, &action, nullptr);
}

// The target the request was passed to ("applications/<app>/<target>"); the
// router names the first one when the pass names none.
const WsgiApplication& wsgiApplicationFor(const canopy_request_t* request) {
    canopy_str_t name = canopy_request_app_target(request);
    for (size_t index = 0; index < options.targets.size(); ++index) {
        if (options.targets[index].name == std::string_view(name.data, name.length)) {
            return wsgi_applications[index];
        }
    }
    return wsgi_applications.front();
}

// Runs on the context's thread without the GIL; takes it for the request.
extern "C" void onRequest(canopy_request_t* request) {
    PyEval_RestoreThread(idle_thread_state);
    serveRequest(request, wsgiApplicationFor(request));
    idle_thread_state = PyEval_SaveThread();
}

// An extra serving thread: a Python thread state of its own, the GIL only
// while it runs Python.
extern "C" void* serveContext(void* argument) {
    auto* context = static_cast<canopy_context_t*>(argument);
    PyGILState_STATE gil = PyGILState_Ensure();
    idle_thread_state = PyEval_SaveThread();
    int rc = canopy_run(context);
    if (rc != CANOPY_OK) {
        logLine(CANOPY_LOG_ERROR, std::string("a serving thread stopped: ") + canopy_strerror(rc));
    }
    PyEval_RestoreThread(idle_thread_state);
    PyGILState_Release(gil);
    canopy_context_free(context);
    return nullptr;
}

// Imports the target's module and returns its application (new
// reference): the callable, or what it returned when `factory` is set. On
// failure logs why (the traceback too) and returns NULL.
PyObject* loadTarget(const PythonTarget& target) {
    PyObject* module = PyImport_ImportModule(target.module.c_str());
    if (module == nullptr) {
        std::string traceback = takeExceptionText();
        logLines(CANOPY_LOG_ERROR, traceback);
        logLine(CANOPY_LOG_ERROR,
                "cannot import the module \"" + target.module + "\": " + lastLine(traceback));
        return nullptr;
    }
    PyObject* callable = PyObject_GetAttrString(module, target.callable.c_str());
    Py_DECREF(module);
    std::string name = target.module + "." + target.callable;
    if (callable == nullptr) {
        PyErr_Clear();
        logLine(CANOPY_LOG_ERROR,
                "the module \"" + target.module + "\" has no callable \"" + target.callable + "\"");
        return nullptr;
    }
    if (!PyCallable_Check(callable)) {
        Py_DECREF(callable);
        logLine(CANOPY_LOG_ERROR, "\"" + name + "\" is not callable");
        return nullptr;
    }
    if (!target.factory) {
        return callable;
    }
    PyObject* made = PyObject_CallNoArgs(callable);
    Py_DECREF(callable);
    if (made == nullptr) {
        std::string traceback = takeExceptionText();
        logLines(CANOPY_LOG_ERROR, traceback);
        logLine(CANOPY_LOG_ERROR, "the factory \"" + name + "\" failed: " + lastLine(traceback));
        return nullptr;
    }
    if (!PyCallable_Check(made)) {
        Py_DECREF(made);
        logLine(CANOPY_LOG_ERROR,
                "the factory \"" + name + "\" returned an object that is not callable");
        return nullptr;
    }
    return made;
}

// "asgi3", "asgi2" or "wsgi" for an application: from `protocol`, else
// detected as Unit does (asgi_server.py, detect_protocol). Empty with the
// reason logged on failure.
std::string protocolOf(PyObject* server, PyObject* app) {
    PyObject* answer = nullptr;
    if (options.protocol == "wsgi") {
        return "wsgi";
    }
    if (options.protocol == "asgi") {
        answer = PyObject_CallMethod(server, "is_coroutine_application", "O", app);
        if (answer != nullptr) {
            std::string kind = PyObject_IsTrue(answer) == 1 ? "asgi3" : "asgi2";
            Py_DECREF(answer);
            return kind;
        }
    } else {
        answer = PyObject_CallMethod(server, "detect_protocol", "O", app);
        const char* text = answer != nullptr ? PyUnicode_AsUTF8(answer) : nullptr;
        if (text != nullptr) {
            std::string kind = text;
            Py_DECREF(answer);
            return kind;
        }
        Py_XDECREF(answer);
    }
    logLine(CANOPY_LOG_ERROR,
            "cannot tell the application's protocol: " + lastLine(takeExceptionText()));
    return {};
}

// The ASGI side: a canopy_asgi.Target per target and the Process.
bool prepareAsgi(PyObject* server, const std::vector<PyObject*>& apps,
                 const std::vector<std::string>& kinds) {
    PyObject* targets = PyList_New(0);
    bool ok = targets != nullptr;
    for (size_t index = 0; ok && index < apps.size(); ++index) {
        const PythonTarget& target = options.targets[index];
        PyObject* made =
            PyObject_CallMethod(server, "Target", "sOy#O", target.name.c_str(), apps[index],
                                target.prefix.data(), static_cast<Py_ssize_t>(target.prefix.size()),
                                kinds[index] == "asgi3" ? Py_True : Py_False);
        ok = made != nullptr && PyList_Append(targets, made) == 0;
        Py_XDECREF(made);
    }
    if (ok) {
        asgi_process =
            PyObject_CallMethod(server, "Process", "OO", targets, PyList_GET_ITEM(targets, 0));
        ok = asgi_process != nullptr;
    }
    Py_XDECREF(targets);
    if (!ok) {
        logLine(CANOPY_LOG_ERROR, "cannot prepare ASGI: " + lastLine(takeExceptionText()));
    }
    return ok;
}

int setup(canopy_task_t* task, const canopy_process_t* /*process*/, const canopy_app_conf_t* conf) {
    setLogTask(task);
    if (std::string problem = parseOptions(conf->json, conf->json_length, options);
        !problem.empty()) {
        logLine(CANOPY_LOG_ERROR, problem);
        return CANOPY_ERROR;
    }
    if (std::string problem = startInterpreter(options); !problem.empty()) {
        logLine(CANOPY_LOG_ERROR, problem);
        return CANOPY_ERROR;
    }
    PyObject* server = loadAsgiServer();
    if (server == nullptr) {
        logLine(CANOPY_LOG_ERROR, "cannot load the ASGI server: " + lastLine(takeExceptionText()));
        return CANOPY_ERROR;
    }
    std::vector<PyObject*> apps;
    std::vector<std::string> kinds;
    auto release = [&] {
        for (PyObject* app : apps) {
            Py_DECREF(app);
        }
        Py_DECREF(server);
    };
    for (const PythonTarget& target : options.targets) {
        PyObject* app = loadTarget(target);
        std::string kind = app != nullptr ? protocolOf(server, app) : std::string();
        if (app != nullptr) {
            apps.push_back(app);
        }
        if (kind.empty()) {
            release();
            return CANOPY_ERROR;
        }
        kinds.push_back(kind);
    }
    serving_asgi = kinds.front() != "wsgi";
    for (const std::string& kind : kinds) {
        if ((kind != "wsgi") != serving_asgi) {
            logLine(CANOPY_LOG_ERROR,
                    "the targets mix WSGI and ASGI applications; set \"protocol\" to say "
                    "which all of them speak");
            release();
            return CANOPY_ERROR;
        }
    }
    if (serving_asgi) {
        if (!prepareAsgi(server, apps, kinds)) {
            release();
            return CANOPY_ERROR;
        }
    } else {
        PyObject* base_environ = nullptr;
        if (!createWsgiTypes() ||
            (base_environ = makeBaseEnviron(options.threads > 1)) == nullptr) {
            logLine(CANOPY_LOG_ERROR, "cannot prepare WSGI: " + lastLine(takeExceptionText()));
            release();
            return CANOPY_ERROR;
        }
        for (size_t index = 0; index < apps.size(); ++index) {
            WsgiApplication application;
            Py_INCREF(apps[index]);
            application.callable = apps[index];
            Py_INCREF(base_environ);
            application.base_environ = base_environ;
            application.prefix = options.targets[index].prefix;
            wsgi_applications.push_back(std::move(application));
        }
        Py_DECREF(base_environ);
    }
    release();
    // Nothing buffered may be written twice, once by each worker.
    for (const char* name : {"stdout", "stderr"}) {
        PyObject* stream = PySys_GetObject(name);  // borrowed
        PyObject* flushed = stream != nullptr && stream != Py_None
                                ? PyObject_CallMethod(stream, "flush", nullptr)
                                : nullptr;
        Py_XDECREF(flushed);
        PyErr_Clear();
    }
    // The prototype keeps the GIL: it runs no Python again, and the thread
    // that forks must own it for PyOS_AfterFork_Child in the worker.
    return CANOPY_OK;
}

// An extra ASGI serving thread: its own Python thread state and asyncio
// loop (asgi_server.py, Process.serve).
extern "C" void* serveAsgiContext(void* argument) {
    auto* context = static_cast<canopy_context_t*>(argument);
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject* object = newAsgiContext(context);
    PyObject* served = object != nullptr
                           ? PyObject_CallMethod(asgi_process, "serve", "OO", object, Py_False)
                           : nullptr;
    if (served == nullptr) {
        logLine(CANOPY_LOG_ERROR, "an ASGI serving thread stopped:");
        logLines(CANOPY_LOG_ERROR, takeExceptionText());
    }
    Py_XDECREF(served);
    if (object != nullptr) {
        detachAsgiContext(object);
        Py_DECREF(object);
    }
    PyGILState_Release(gil);
    canopy_context_free(context);
    return nullptr;
}

// Lifespan startup of every ASGI target, before the router hears that the
// process is ready. Empty, or why the application refused to start (logged;
// the router is told, so the configuration change is refused with it).
std::string startAsgiApplication() {
    PyObject* failure = PyObject_CallMethod(asgi_process, "startup", nullptr);
    std::string reason;
    if (failure == nullptr) {
        std::string traceback = takeExceptionText();
        logLines(CANOPY_LOG_ERROR, traceback);
        reason = "the ASGI lifespan startup failed: " + lastLine(traceback);
    } else if (failure != Py_None) {
        const char* text = PyUnicode_Check(failure) ? PyUnicode_AsUTF8(failure) : nullptr;
        reason = text != nullptr ? text : "the ASGI lifespan startup failed";
        PyErr_Clear();
    }
    Py_XDECREF(failure);
    if (!reason.empty()) {
        logLine(CANOPY_LOG_ALERT, reason);
        if (int rc = canopy_app_start_failed(nullptr, reason.c_str()); rc != CANOPY_OK) {
            logLine(CANOPY_LOG_WARN,
                    std::string("cannot tell the router why: ") + canopy_strerror(rc));
        }
    }
    return reason;
}

// Serves the main context: WSGI in canopy_run with the GIL released while
// it waits; ASGI on the loop lifespan ran on. Returns canopy_run's code.
int serveMainContext(canopy_app_t* app) {
    if (!serving_asgi) {
        idle_thread_state = PyEval_SaveThread();
        int rc = canopy_run(canopy_app_main_context(app));
        PyEval_RestoreThread(idle_thread_state);
        return rc;
    }
    PyObject* object = newAsgiContext(canopy_app_main_context(app));
    PyObject* served = object != nullptr
                           ? PyObject_CallMethod(asgi_process, "serve", "OO", object, Py_True)
                           : nullptr;
    int rc = CANOPY_OK;
    if (served == nullptr) {
        logLine(CANOPY_LOG_ERROR, "the main ASGI serving loop stopped:");
        logLines(CANOPY_LOG_ERROR, takeExceptionText());
        rc = CANOPY_ERROR;
        canopy_app_quit(app);  // the other threads finish too
    }
    Py_XDECREF(served);
    if (object != nullptr) {
        detachAsgiContext(object);
        Py_DECREF(object);
    }
    return rc;
}

int start(canopy_task_t* task, const canopy_app_conf_t* /*conf*/) {
    setLogTask(task);
    if (!Py_IsInitialized() || (wsgi_applications.empty() && asgi_process == nullptr)) {
        logLine(CANOPY_LOG_ALERT, "the python module's setup did not run in this process");
        return 1;
    }
    PyOS_AfterFork_Child();
    if (serving_asgi && !startAsgiApplication().empty()) {
        flushErrors();
        return 1;
    }

    canopy_app_init_t init{};
    init.size = sizeof init;
    init.abi_major = CANOPY_APP_ABI_MAJOR;
    init.abi_minor = CANOPY_APP_ABI_MINOR;
    if (serving_asgi) {
        setAsgiCallbacks(init);
    } else {
        init.request_handler = onRequest;
    }
    init.attachment = nullptr;  // CANOPY_APP_INIT
    canopy_app_t* app = nullptr;
    if (int rc = canopy_app_init(&init, &app); rc != CANOPY_OK) {
        logLine(CANOPY_LOG_ALERT,
                std::string("cannot attach to the router: ") + canopy_strerror(rc));
        return 1;
    }
    serving_app.store(app);
    handleQuitSignals();

    std::vector<pthread_t> threads;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    if (options.thread_stack_size > 0) {
        pthread_attr_setstacksize(&attributes, options.thread_stack_size);
    }
    for (int index = 1; index < options.threads; ++index) {
        canopy_context_t* context = nullptr;
        if (int rc = canopy_context_create(app, &context); rc != CANOPY_OK) {
            logLine(CANOPY_LOG_WARN, "serving with " + std::to_string(index) + " of " +
                                         std::to_string(options.threads) +
                                         " threads: " + canopy_strerror(rc));
            break;
        }
        pthread_t thread{};
        if (int error = pthread_create(&thread, &attributes,
                                       serving_asgi ? serveAsgiContext : serveContext, context);
            error != 0) {
            logLine(CANOPY_LOG_WARN,
                    std::string("cannot start a serving thread: ") + std::strerror(error));
            canopy_context_free(context);
            break;
        }
        threads.push_back(thread);
    }
    pthread_attr_destroy(&attributes);

    int rc = serveMainContext(app);
    {
        GilRelease unlocked;
        for (pthread_t thread : threads) {
            pthread_join(thread, nullptr);
        }
    }
    serving_app.store(nullptr);
    if (serving_asgi) {
        PyObject* stopped = PyObject_CallMethod(asgi_process, "shutdown", nullptr);
        if (stopped == nullptr) {
            logLine(CANOPY_LOG_ERROR, "the ASGI lifespan shutdown failed:");
            logLines(CANOPY_LOG_ERROR, takeExceptionText());
        }
        Py_XDECREF(stopped);
    }
    flushErrors();
    if (Py_FinalizeEx() != 0) {
        logLine(CANOPY_LOG_WARN, "Python did not finalise cleanly");
    }
    canopy_app_free(app);
    return rc == CANOPY_OK ? 0 : 1;
}

// The runtime's version, from the library actually loaded ("3.11.2").
char runtime_version[32] = "3.11";
char description[96] = "CPython 3.11: WSGI, ASGI";

[[maybe_unused]] const bool version_known = [] {
    const char* full = Py_GetVersion();  // safe before initialisation
    size_t length = std::strcspn(full, " ");
    if (length > 0 && length < sizeof runtime_version) {
        std::memcpy(runtime_version, full, length);
        runtime_version[length] = '\0';
        std::string text = std::string("CPython ") + runtime_version + ": WSGI, ASGI";
        std::strncpy(description, text.c_str(), sizeof description - 1);
    }
    return true;
}();

const canopy_mount_t mounts[] = {
    {"/usr/lib/python3.11", nullptr, "bind", MS_BIND | MS_RDONLY, nullptr},
    {"/usr/lib/python3", nullptr, "bind", MS_BIND | MS_RDONLY, nullptr},
};

// The application keys: `module` and its companions, or `targets` (each
// with its own), never both. What the schema cannot say (the stack size's
// page multiple, an import error) setup() refuses with a reason.
const char* const config_schema = R"({
    "type": "object",
    "properties": {
        "module": {"type": "string", "minLength": 1},
        "callable": {"type": "string", "minLength": 1},
        "factory": {"type": "boolean"},
        "home": {"type": "string", "minLength": 1},
        "path": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "prefix": {"type": "string", "pattern": "^/"},
        "protocol": {"enum": ["wsgi", "asgi"]},
        "targets": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 254,
            "propertyNames": {"minLength": 1},
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "module": {"type": "string", "minLength": 1},
                    "callable": {"type": "string", "minLength": 1},
                    "factory": {"type": "boolean"},
                    "prefix": {"type": "string", "pattern": "^/"}
                },
                "required": ["module"],
                "additionalProperties": false
            }
        },
        "threads": {"type": "integer", "minimum": 1, "maximum": 256},
        "thread_stack_size": {"type": "integer", "minimum": 1}
    },
    "additionalProperties": false,
    "oneOf": [
        {"required": ["module"], "not": {"required": ["targets"]}},
        {"required": ["targets"], "not": {"anyOf": [
            {"required": ["module"]}, {"required": ["callable"]},
            {"required": ["factory"]}, {"required": ["prefix"]}]}}
    ]
})";

}  // namespace
}  // namespace canopy::python

extern "C" CANOPY_MODULE_EXPORT const canopy_module_t canopy_module = {
    .size = sizeof(canopy_module_t),
    .abi_major = CANOPY_MODULE_ABI_MAJOR,
    .abi_minor = CANOPY_MODULE_ABI_MINOR,
    .type = "python",
    .version = canopy::python::runtime_version,
    .mounts = canopy::python::mounts,
    .mount_count = sizeof(canopy::python::mounts) / sizeof(canopy::python::mounts[0]),
    .config_schema = canopy::python::config_schema,
    .setup = canopy::python::setup,
    .start = canopy::python::start,
    .description = canopy::python::description,
};
