// python3.11.canopy.so: the descriptor, setup() in the prototype (start
// CPython, import the application) and start() in each worker (attach to
// the router, serve on one context per thread).

#include <canopy/app.h>
#include <canopy/module.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mount.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "python_runtime.h"
#include "wsgi_objects.h"
#include "wsgi_request.h"

namespace canopy::python {
namespace {

PythonOptions options;
WsgiApplication application;

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

// Runs on the context's thread without the GIL; takes it for the request.
extern "C" void onRequest(canopy_request_t* request) {
    PyEval_RestoreThread(idle_thread_state);
    serveRequest(request, application);
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
    PyObject* module = PyImport_ImportModule(options.module.c_str());
    if (module == nullptr) {
        std::string traceback = takeExceptionText();
        logLines(CANOPY_LOG_ERROR, traceback);
        logLine(CANOPY_LOG_ERROR,
                "cannot import the module \"" + options.module + "\": " + lastLine(traceback));
        return CANOPY_ERROR;
    }
    application.callable = PyObject_GetAttrString(module, options.callable.c_str());
    Py_DECREF(module);
    if (application.callable == nullptr) {
        PyErr_Clear();
        logLine(CANOPY_LOG_ERROR, "the module \"" + options.module + "\" has no callable \"" +
                                      options.callable + "\"");
        return CANOPY_ERROR;
    }
    if (!PyCallable_Check(application.callable)) {
        logLine(CANOPY_LOG_ERROR,
                "\"" + options.module + "." + options.callable + "\" is not callable");
        return CANOPY_ERROR;
    }
    application.prefix = options.prefix;
    if (!createWsgiTypes() ||
        (application.base_environ = makeBaseEnviron(options.threads > 1)) == nullptr) {
        logLine(CANOPY_LOG_ERROR, "cannot prepare WSGI: " + lastLine(takeExceptionText()));
        return CANOPY_ERROR;
    }
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

int start(canopy_task_t* task, const canopy_app_conf_t* /*conf*/) {
    setLogTask(task);
    if (!Py_IsInitialized() || application.callable == nullptr) {
        logLine(CANOPY_LOG_ALERT, "the python module's setup did not run in this process");
        return 1;
    }
    PyOS_AfterFork_Child();

    canopy_app_init_t init{};
    init.size = sizeof init;
    init.abi_major = CANOPY_APP_ABI_MAJOR;
    init.abi_minor = CANOPY_APP_ABI_MINOR;
    init.request_handler = onRequest;
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
        if (int error = pthread_create(&thread, &attributes, serveContext, context); error != 0) {
            logLine(CANOPY_LOG_WARN,
                    std::string("cannot start a serving thread: ") + std::strerror(error));
            canopy_context_free(context);
            break;
        }
        threads.push_back(thread);
    }
    pthread_attr_destroy(&attributes);

    idle_thread_state = PyEval_SaveThread();
    int rc = canopy_run(canopy_app_main_context(app));
    for (pthread_t thread : threads) {
        pthread_join(thread, nullptr);
    }
    PyEval_RestoreThread(idle_thread_state);
    serving_app.store(nullptr);
    flushErrors();
    if (Py_FinalizeEx() != 0) {
        logLine(CANOPY_LOG_WARN, "Python did not finalise cleanly");
    }
    canopy_app_free(app);
    return rc == CANOPY_OK ? 0 : 1;
}

// The runtime's version, from the library actually loaded ("3.11.2").
char runtime_version[32] = "3.11";
char description[96] = "CPython 3.11: WSGI";

[[maybe_unused]] const bool version_known = [] {
    const char* full = Py_GetVersion();  // safe before initialisation
    size_t length = std::strcspn(full, " ");
    if (length > 0 && length < sizeof runtime_version) {
        std::memcpy(runtime_version, full, length);
        runtime_version[length] = '\0';
        std::string text = std::string("CPython ") + runtime_version + ": WSGI";
        std::strncpy(description, text.c_str(), sizeof description - 1);
    }
    return true;
}();

const canopy_mount_t mounts[] = {
    {"/usr/lib/python3.11", nullptr, "bind", MS_BIND | MS_RDONLY, nullptr},
    {"/usr/lib/python3", nullptr, "bind", MS_BIND | MS_RDONLY, nullptr},
};

// The application keys; what the schema cannot say (ASGI, targets and
// factory not there yet, the stack size's page multiple) setup() refuses
// with a reason.
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
        "targets": {"type": "object"},
        "threads": {"type": "integer", "minimum": 1, "maximum": 256},
        "thread_stack_size": {"type": "integer", "minimum": 1}
    },
    "additionalProperties": false,
    "anyOf": [{"required": ["module"]}, {"required": ["targets"]}]
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
