/*
 * Canopy module ABI: what a language module exports so that canopyd can
 * discover it, validate its applications' configuration and run them.
 *
 * A module is a shared object named `<type><version>.canopy.so` placed in the
 * modules directory. It exports exactly one data symbol, `canopy_module`
 * (use CANOPY_MODULE_EXPORT), of type `canopy_module_t`.
 *
 * Version policy
 * --------------
 * The descriptor starts with its own size and the ABI major/minor the module
 * was built against. The host refuses a module of another major and a module
 * that needs a newer minor than the host provides; it accepts every older
 * minor of its major. A minor release only appends fields at the end of
 * `canopy_module_t`; the host reads a field only when `size` shows the module
 * has it. A major release may change anything.
 *
 * Naming: hooks the module implements are members of `canopy_module_t`
 * (setup, start); callbacks the host provides are members of `canopy_task_t`
 * and start with `host_`.
 *
 * Memory and threads: every pointer in the descriptor refers to static
 * storage of the module and must stay valid for as long as the module is
 * loaded. The host calls `setup` and `start` on the process's main thread.
 * Strings passed by the host to a hook are owned by the host and valid until
 * the hook returns unless stated otherwise.
 */

#ifndef CANOPY_MODULE_H
#define CANOPY_MODULE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. */
#define CANOPY_MODULE_ABI_MAJOR 1
#define CANOPY_MODULE_ABI_MINOR 1

/* The name of the one symbol a module exports. */
#define CANOPY_MODULE_SYMBOL "canopy_module"

#if defined(__GNUC__)
#define CANOPY_MODULE_EXPORT __attribute__((visibility("default")))
#else
#define CANOPY_MODULE_EXPORT
#endif

/* Return codes of module hooks. */
#define CANOPY_OK 0
#define CANOPY_ERROR 1

typedef enum canopy_log_level {
    CANOPY_LOG_ALERT = 0,
    CANOPY_LOG_ERROR = 1,
    CANOPY_LOG_WARN = 2,
    CANOPY_LOG_NOTICE = 3,
    CANOPY_LOG_INFO = 4,
    CANOPY_LOG_DEBUG = 5
} canopy_log_level_t;

/*
 * The host's side of a call into the module. Owned by the host; valid for
 * the duration of the hook it was passed to, except that the task given to
 * `start` stays valid until the process exits.
 */
typedef struct canopy_task canopy_task_t;
struct canopy_task {
    /* sizeof(canopy_task_t) as the host built it. */
    size_t size;
    /* Host-private state; modules must not touch it. */
    void* host_context;
    /* Writes one line to the server log with the process's prefix. `message`
     * is copied before the call returns. Safe from any thread. */
    void (*host_log)(canopy_task_t* task, canopy_log_level_t level, const char* message);
};

/* A path the runtime needs inside an isolated root filesystem. */
typedef struct canopy_mount {
    const char* source;  /* host path, e.g. "/usr/lib/python3.11" */
    const char* target;  /* path inside the rootfs; NULL means same as source */
    const char* fs_type; /* "bind", "tmpfs", "proc", ... */
    uint64_t flags;      /* MS_* flags for mount(2) */
    const char* data;    /* fs-specific options, or NULL */
} canopy_mount_t;

/* The process the hook runs in, as the host describes it. */
typedef struct canopy_process {
    size_t size;          /* sizeof(canopy_process_t) as the host built it */
    const char* app_name; /* the application's name in the configuration */
    int pid;              /* the process's pid as the host sees it */
} canopy_process_t;

/* An application's configuration as given to `setup` and `start`. */
typedef struct canopy_app_conf {
    size_t size;          /* sizeof(canopy_app_conf_t) as the host built it */
    const char* app_name; /* NUL-terminated */
    const char* json;     /* the application's object, validated against
                           * the module's schema; NUL-terminated */
    size_t json_length;
} canopy_app_conf_t;

/*
 * setup: runs once in the application's prototype process, after the module
 * was loaded and before privileges are dropped or the root is changed. It
 * may prepare what all workers share (resolve paths, preload code). Returns
 * CANOPY_OK or CANOPY_ERROR after logging the reason through task->host_log.
 */
typedef int (*canopy_setup_fn)(canopy_task_t* task, const canopy_process_t* process,
                               const canopy_app_conf_t* conf);

/*
 * start: runs in each worker process and serves requests until the host asks
 * it to stop; its return value becomes the process's exit code.
 */
typedef int (*canopy_start_fn)(canopy_task_t* task, const canopy_app_conf_t* conf);

typedef struct canopy_module {
    /* ---- ABI 1.0 ---- */
    uint32_t size;       /* sizeof(canopy_module_t) as the module built it */
    uint16_t abi_major;  /* CANOPY_MODULE_ABI_MAJOR */
    uint16_t abi_minor;  /* CANOPY_MODULE_ABI_MINOR */
    const char* type;    /* language name: "python", "ruby", "java", ...;
                          * lower-case letters, digits, '-' and '_' */
    const char* version; /* runtime version, e.g. "3.11.2" */
    const canopy_mount_t* mounts;
    size_t mount_count;
    /* JSON Schema (a JSON object, as text) for the application keys this
     * module adds to the common ones (type, processes, user, ...). */
    const char* config_schema;
    canopy_setup_fn setup; /* may be NULL */
    canopy_start_fn start; /* required */

    /* ---- ABI 1.1 ---- */
    /* One line for humans, e.g. "CPython 3.11.2: WSGI and ASGI"; may be NULL. */
    const char* description;
} canopy_module_t;

/* Size of the descriptor of each minor, for hosts reading older modules. */
#define CANOPY_MODULE_SIZE_1_0 offsetof(canopy_module_t, description)
#define CANOPY_MODULE_SIZE_1_1 sizeof(canopy_module_t)

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CANOPY_MODULE_H */
