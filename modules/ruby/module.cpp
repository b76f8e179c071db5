// ruby3.1.canopy.so: the descriptor, setup() in the prototype (check that
// the application loads, in a helper process) and start() in each worker
// (start Ruby, load the application, serve on one Ruby thread per context).
//
// Why Ruby starts in each worker and not once in the prototype: a VM that
// a plain fork() copies is broken in the child. Ruby 3.1 arms a POSIX timer
// and a self-pipe to interrupt blocked threads; a fork does not copy the
// timer, and only Ruby's own Process.fork re-creates both (through
// functions libruby does not export). A VM started in the prototype fails
// in the worker with "[ASYNC BUG] timer_settime (arm)" the first time a
// blocked thread is interrupted, and the worker's descriptor clean-up
// closes the self-pipe under it. So the prototype never starts Ruby itself.

#include <canopy/app.h>
#include <canopy/module.h>
#include <fcntl.h>
#include <ruby.h>
#include <ruby/thread.h>
#include <ruby/version.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

#include "rack_objects.h"
#include "rack_request.h"
#include "ruby_runtime.h"

namespace canopy::ruby {
namespace {

RubyOptions options;

std::atomic<canopy_app_t*> serving_app{nullptr};

extern "C" void quitOnSignal(int /*signal*/) {
    if (canopy_app_t* app = serving_app.load()) {
        canopy_app_quit(app);  // async-signal-safe
    }
}

// SIGTERM quits gracefully (the open requests finish); SIGINT is ignored,
// as in Unit's Ruby workers. Ruby keeps its handlers for the others.
void handleQuitSignals() {
    struct sigaction action {};
    action.sa_handler = &quitOnSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &action, nullptr);
    signal(SIGINT, SIG_IGN);
}

// ---- setup: the helper that loads the application once -------------------

// Writes all of `text` to `fd`, ignoring failures (the reader then sees a
// shorter reason).
void writeAll(int fd, const std::string& text) {
    size_t done = 0;
    while (done < text.size()) {
        ssize_t written = ::write(fd, text.data() + done, text.size() - done);
        if (written < 0 && errno == EINTR) {
            continue;
        }
        if (written <= 0) {
            return;
        }
        done += static_cast<size_t>(written);
    }
}

// In the helper: start Ruby and load as a worker would. Returns the reason
// it failed, or an empty string.
std::string loadInHelper() {
    if (!options.working_directory.empty() && ::chdir(options.working_directory.c_str()) != 0) {
        return "cannot change to the working directory \"" + options.working_directory +
               "\": " + std::strerror(errno);
    }
    if (std::string problem = startRuby(options); !problem.empty()) {
        return problem;
    }
    std::string problem;
    if (NIL_P(loadApplication(options, problem))) {
        return problem;
    }
    return {};
}

// Forks a helper that starts Ruby and loads the application, to refuse a
// configuration whose application cannot load, with the reason, before any
// worker exists. The helper exits without running at_exit handlers.
std::string checkInHelper() {
    int channel[2];
    if (::pipe2(channel, O_CLOEXEC) != 0) {
        return std::string("cannot create a pipe: ") + std::strerror(errno);
    }
    pid_t pid = ::fork();
    if (pid < 0) {
        int error = errno;
        ::close(channel[0]);
        ::close(channel[1]);
        return std::string("cannot fork the loading helper: ") + std::strerror(error);
    }
    if (pid == 0) {
        ::close(channel[0]);
        std::string problem = loadInHelper();
        writeAll(channel[1], problem);
        ::_exit(problem.empty() ? 0 : 1);
    }
    ::close(channel[1]);
    std::string reason;
    char buffer[4096];
    for (;;) {
        ssize_t got = ::read(channel[0], buffer, sizeof buffer);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break;
        }
        reason.append(buffer, static_cast<size_t>(got));
    }
    ::close(channel[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return {};
    }
    if (!reason.empty()) {
        return reason;
    }
    if (WIFSIGNALED(status)) {
        return "loading the application killed Ruby with signal " +
               std::to_string(WTERMSIG(status));
    }
    return "loading the application failed (exit code " + std::to_string(WEXITSTATUS(status)) + ")";
}

int setup(canopy_task_t* task, const canopy_process_t* /*process*/, const canopy_app_conf_t* conf) {
    setLogTask(task);
    std::string problem = parseOptions(conf->json, conf->json_length, options);
    if (problem.empty()) {
        problem = checkInHelper();
    }
    if (!problem.empty()) {
        logLine(CANOPY_LOG_ERROR, problem);
        return CANOPY_ERROR;
    }
    return CANOPY_OK;
}

// ---- start: the worker ---------------------------------------------------

// One serving thread's part: its context. Plain data, read by Ruby threads.
struct ServingThread {
    canopy_context_t* context;
    bool main_context;
};

ServingThread serving_threads[256];

// Runs on the context's thread without the GVL; takes it for the request.
void* serveWithGvl(void* request) {
    serveRequest(static_cast<canopy_request_t*>(request));
    return nullptr;
}

extern "C" void onRequest(canopy_request_t* request) {
    rb_thread_call_with_gvl(serveWithGvl, request);
}

void* runContext(void* argument) {
    auto* thread = static_cast<ServingThread*>(argument);
    int rc = canopy_run(thread->context);
    if (rc != CANOPY_OK) {
        logLine(CANOPY_LOG_ERROR, std::string("a serving thread stopped: ") + canopy_strerror(rc));
    }
    return nullptr;
}

// Ruby interrupts a serving thread's wait only to stop it (Thread#kill,
// the VM ending): the whole process then quits gracefully.
void quitFromRuby(void* /*unused*/) {
    if (canopy_app_t* app = serving_app.load()) {
        canopy_app_quit(app);
    }
}

// The body of each serving Ruby thread (rb_thread_create): the thread
// hooks around canopy_run, which waits without the GVL.
VALUE servingThreadBody(void* argument) {
    auto* thread = static_cast<ServingThread*>(argument);
    // A failing hook is logged with its backtrace; the thread serves anyway.
    runHooks("on_thread_boot");
    rb_thread_call_without_gvl(runContext, thread, quitFromRuby, nullptr);
    if (!thread->main_context) {
        canopy_context_free(thread->context);
    }
    runHooks("on_thread_shutdown");
    return Qnil;
}

struct StartThreads {
    int count;
    VALUE threads;  // out: the Ruby Thread objects
};

VALUE startThreadsRuby(VALUE argument) {
    auto* start = reinterpret_cast<StartThreads*>(argument);
    start->threads = rb_ary_new();
    rb_ivar_set(canopyModule(), rb_intern("@serving_threads"), start->threads);
    for (int index = 0; index < start->count; ++index) {
        rb_ary_push(start->threads, rb_thread_create(servingThreadBody, &serving_threads[index]));
    }
    return Qnil;
}

VALUE joinThreadsRuby(VALUE threads) {
    for (long index = 0; index < RARRAY_LEN(threads); ++index) {
        rb_funcall(RARRAY_AREF(threads, index), rb_intern("join"), 0);
    }
    return Qnil;
}

int start(canopy_task_t* task, const canopy_app_conf_t* conf) {
    setLogTask(task);
    RUBY_INIT_STACK;
    if (std::string problem = parseOptions(conf->json, conf->json_length, options);
        !problem.empty()) {
        logLine(CANOPY_LOG_ALERT, problem);
        return 1;
    }
    chooseTempDirectory();
    if (std::string problem = startRuby(options); !problem.empty()) {
        logLine(CANOPY_LOG_ALERT, problem);
        return 1;
    }
    std::string problem;
    VALUE application = loadApplication(options, problem);
    if (NIL_P(application)) {
        logLine(CANOPY_LOG_ALERT, problem);
        return 1;
    }
    if (problem = prepareRack(application, options.threads > 1); !problem.empty()) {
        logLine(CANOPY_LOG_ALERT, problem);
        return 1;
    }

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
    runHooks("on_worker_boot");

    // Every context is served by a Ruby thread; the main thread only waits
    // for them in Thread#join, where Ruby runs signal traps.
    int count = 0;
    serving_threads[count++] = {canopy_app_main_context(app), true};
    while (count < options.threads) {
        canopy_context_t* context = nullptr;
        if (int rc = canopy_context_create(app, &context); rc != CANOPY_OK) {
            logLine(CANOPY_LOG_WARN, "serving with " + std::to_string(count) + " of " +
                                         std::to_string(options.threads) +
                                         " threads: " + canopy_strerror(rc));
            break;
        }
        serving_threads[count++] = {context, false};
    }
    StartThreads threads{count, Qnil};
    std::string error;
    int rc = 0;
    if (protectedRun(startThreadsRuby, reinterpret_cast<VALUE>(&threads), &error) == Qundef) {
        logLines(CANOPY_LOG_ALERT, error);
        canopy_app_quit(app);
        rc = 1;
    }
    if (!NIL_P(threads.threads)) {
        // An exception in the join (an untrapped signal, Thread.main.raise)
        // ends the process: quit, and wait for the threads again.
        while (protectedRun(joinThreadsRuby, threads.threads, &error) == Qundef) {
            logLine(CANOPY_LOG_NOTICE, "quitting: " + firstLine(error));
            canopy_app_quit(app);
        }
    }
    runHooks("on_worker_shutdown");
    serving_app.store(nullptr);
    // at_exit handlers and finalizers run here.
    if (int status = ruby_cleanup(0); status != 0 && rc == 0) {
        rc = status;
    }
    canopy_app_free(app);
    return rc;
}

char description[96] = "Ruby 3.1: Rack";

[[maybe_unused]] const bool description_known = [] {
    std::string text = std::string("Ruby ") + ruby_version + ": Rack";
    std::strncpy(description, text.c_str(), sizeof description - 1);
    return true;
}();

const canopy_mount_t mounts[] = {
    {"/usr/lib/ruby", nullptr, "bind", MS_BIND | MS_RDONLY, nullptr},
    {"/usr/share/rubygems-integration", nullptr, "bind", MS_BIND | MS_RDONLY, nullptr},
    {"/var/lib/gems", nullptr, "bind", MS_BIND | MS_RDONLY, nullptr},
};

// The application keys (the common ones are the host's).
const char* const config_schema = R"({
    "type": "object",
    "properties": {
        "script": {"type": "string", "minLength": 1},
        "threads": {"type": "integer", "minimum": 1, "maximum": 256},
        "hooks": {"type": "string", "minLength": 1}
    },
    "additionalProperties": false,
    "required": ["script"]
})";

}  // namespace
}  // namespace canopy::ruby

extern "C" CANOPY_MODULE_EXPORT const canopy_module_t canopy_module = {
    .size = sizeof(canopy_module_t),
    .abi_major = CANOPY_MODULE_ABI_MAJOR,
    .abi_minor = CANOPY_MODULE_ABI_MINOR,
    .type = "ruby",
    // The version of the libruby actually loaded ("3.1.2").
    .version = ruby_version,
    .mounts = canopy::ruby::mounts,
    .mount_count = sizeof(canopy::ruby::mounts) / sizeof(canopy::ruby::mounts[0]),
    .config_schema = canopy::ruby::config_schema,
    .setup = canopy::ruby::setup,
    .start = canopy::ruby::start,
    .description = canopy::ruby::description,
};
