// The CPython side of the module: its options, starting the interpreter in
// the prototype, logging, exceptions as text, and the GIL guard.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <canopy/module.h>

#include <cstddef>
#include <string>
#include <vector>

namespace canopy::python {

// One entry point of the application: the top-level `module`, `callable`,
// `factory` and `prefix`, or one entry of `targets`.
struct PythonTarget {
    std::string name;  // the key in `targets`; empty for the top-level one
    std::string module;
    std::string callable = "application";
    bool factory = false;  // call callable() once and serve its result
    std::string prefix;    // without a trailing '/'; empty: none
};

// The application keys of modules/python/README.md, parsed and checked.
struct PythonOptions {
    std::vector<PythonTarget> targets;  // in the configuration's order; the first is the default
    std::string protocol;               // "wsgi", "asgi", or empty: detected
    std::string home;
    std::vector<std::string> path;  // prepended to sys.path in this order
    int threads = 1;
    size_t thread_stack_size = 0;  // 0: the system's default
};

// Parses the application's JSON object (already validated against the
// module's schema). Returns an empty string, or why the keys cannot be used
// (features not there yet, values the schema cannot check).
std::string parseOptions(const char* json, size_t length, PythonOptions& options);

// Starts CPython isolated from the user's environment (no PYTHON* variables,
// no user site, no signal handlers), with `home` and `path` honoured. On
// success the calling thread holds the GIL. Returns an empty string or why
// it failed.
std::string startInterpreter(const PythonOptions& options);

// Where the module's log lines go: the task of setup, then of start. Any
// thread (host_log is thread-safe).
void setLogTask(canopy_task_t* task);
void logLine(canopy_log_level_t level, const std::string& message);
// Logs a multi-line text one line at a time.
void logLines(canopy_log_level_t level, const std::string& text);

// The pending Python exception as a formatted traceback ("Traceback ...\n
// ValueError: ..."), clearing it. The GIL must be held.
std::string takeExceptionText();
// The last line of a traceback: "ModuleNotFoundError: No module named 'x'".
std::string lastLine(const std::string& text);

// Releases the GIL for a blocking call into the SDK and takes it back.
class GilRelease {
  public:
    GilRelease() : state_(PyEval_SaveThread()) {}
    ~GilRelease() { PyEval_RestoreThread(state_); }
    GilRelease(const GilRelease&) = delete;
    GilRelease& operator=(const GilRelease&) = delete;

  private:
    PyThreadState* state_;
};

}  // namespace canopy::python
