/*
 * Canopy application ABI: the request/response side of the SDK (libcanopy).
 *
 * A language module or an "external" program links libcanopy, initialises
 * it with callbacks, and runs a loop that takes requests from the router and
 * hands them to the callbacks. Everything crosses shared memory; see
 * docs/sdk.md for the concepts and a complete example.
 *
 * Version policy
 * --------------
 * As <canopy/module.h>: structs passed in start with their size and the
 * library reads a field only when the size shows the caller has it. The
 * library refuses an init struct of another ABI major and accepts every
 * older minor. A minor release only appends fields and functions.
 *
 * Errors
 * ------
 * Every function that can fail returns one of the CANOPY_* codes below; no
 * C++ exception ever leaves the library. Accessors that cannot fail return
 * their value directly.
 *
 * Memory
 * ------
 * Objects (canopy_app_t, canopy_context_t, canopy_request_t) are opaque and
 * owned by the library. Strings the library hands out are canopy_str_t:
 * pointer plus length, NOT NUL-terminated, owned by the library and valid
 * for the lifetime stated at each function (for request fields: until the
 * request is done). Data the caller passes in is copied before the call
 * returns unless stated otherwise; the caller keeps ownership.
 *
 * Threads
 * -------
 * A process has one canopy_app_t and one or more contexts. A context is used
 * by one thread at a time (normally the thread that runs canopy_run on it),
 * and so are the requests it took: every canopy_request_* and
 * canopy_response_* call on a request must come from the thread running the
 * request's context. Calls marked "any thread" are thread-safe. Blocking
 * calls wait on the context's own eventfd and never hold a lock while they
 * wait.
 */

#ifndef CANOPY_APP_H
#define CANOPY_APP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. */
#define CANOPY_APP_ABI_MAJOR 1
#define CANOPY_APP_ABI_MINOR 0

/* The environment variable the host sets for every application process; its
 * value is the attachment text described at canopy_app_init_t.attachment. */
#define CANOPY_APP_INIT_ENV "CANOPY_APP_INIT"

#if defined(__GNUC__)
#define CANOPY_APP_API __attribute__((visibility("default")))
#else
#define CANOPY_APP_API
#endif

/* ---- Return codes ------------------------------------------------------
 * CANOPY_OK and CANOPY_ERROR have the values <canopy/module.h> gives them,
 * so both headers can be included together. */
#define CANOPY_OK 0          /* success */
#define CANOPY_ERROR 1       /* a system or transport failure (logged) */
#define CANOPY_AGAIN 2       /* a non-blocking call would block: retry later */
#define CANOPY_STATE 3       /* the call is out of order (e.g. header after body, double done) */
#define CANOPY_INVALID 4     /* an argument is out of range or NULL */
#define CANOPY_CLOSED 5      /* the peer is gone: client left, router aborted, stream ended */
#define CANOPY_NO_MEMORY 6   /* memory (heap or the shared-memory budget) is exhausted */
#define CANOPY_NOT_FOUND 7   /* a lookup found nothing */
#define CANOPY_UNSUPPORTED 8 /* another ABI major, or an attachment version not understood */
#define CANOPY_QUIT 9        /* the app is quitting and this context has nothing left to do */

/* A short, static, English name of a return code: "again", "state", ... Any
 * thread. The pointer is to static storage. */
CANOPY_APP_API const char* canopy_strerror(int code);

/* ---- Objects ------------------------------------------------------------ */

/* One per process: the attachment to the router, the shared-memory pools. */
typedef struct canopy_app canopy_app_t;
/* One per thread that serves requests; each has its own wake-up eventfd. */
typedef struct canopy_context canopy_context_t;
/* One request, from the moment a context takes it until canopy_request_done. */
typedef struct canopy_request canopy_request_t;

/* Bytes owned by the library: `length` bytes at `data`, not NUL-terminated.
 * `data` is never NULL (an empty string points at a static ""). */
typedef struct canopy_str {
    const char* data;
    size_t length;
} canopy_str_t;

/* A WebSocket frame as the app receives it. The payload is unmasked and owned
 * by the library; valid until the websocket handler returns (or, for
 * canopy_websocket_receive, until the next receive or canopy_request_done). */
typedef struct canopy_websocket_frame {
    size_t size;               /* sizeof(canopy_websocket_frame_t) as the library built it */
    canopy_request_t* request; /* the upgraded request the frame belongs to */
    uint8_t opcode;            /* CANOPY_WS_* */
    uint8_t fin;               /* 1 on the last fragment of a message */
    uint8_t rsv;               /* RSV1..3 bits as received (bits 0x40, 0x20, 0x10) */
    const uint8_t* payload;
    size_t payload_length;
} canopy_websocket_frame_t;

/* Opcodes (RFC 6455). */
#define CANOPY_WS_CONTINUATION 0x0
#define CANOPY_WS_TEXT 0x1
#define CANOPY_WS_BINARY 0x2
#define CANOPY_WS_CLOSE 0x8
#define CANOPY_WS_PING 0x9
#define CANOPY_WS_PONG 0xA

/* ---- Callbacks -----------------------------------------------------------
 * All callbacks run on the thread running the context (inside canopy_run or
 * canopy_run_once) and must not call canopy_run on the same context. Pointers
 * passed to them stay valid as documented at each object. */

/* A request (or an event on a request). */
typedef void (*canopy_request_handler_fn)(canopy_request_t* request);
/* A WebSocket frame arrived on an upgraded request. */
typedef void (*canopy_websocket_handler_fn)(const canopy_websocket_frame_t* frame);
/* A context-wide event (quit). */
typedef void (*canopy_context_handler_fn)(canopy_context_t* context);

/*
 * Everything canopy_app_init needs. The caller owns the struct and may free
 * it once canopy_app_init returns (the attachment text is parsed and copied).
 */
typedef struct canopy_app_init_info {
    /* ---- ABI 1.0 ---- */
    size_t size;        /* sizeof(canopy_app_init_t) as the caller built it */
    uint16_t abi_major; /* CANOPY_APP_ABI_MAJOR */
    uint16_t abi_minor; /* CANOPY_APP_ABI_MINOR */

    /* Required: a new request. The handler may answer it at once (response,
     * canopy_request_done) or keep it open and finish it later on the same
     * context (driven by data_handler/drain_handler/websocket_handler). */
    canopy_request_handler_fn request_handler;
    /* Optional: more request body (or its end) arrived for an open request
     * whose last canopy_request_read_nb returned CANOPY_AGAIN. */
    canopy_request_handler_fn data_handler;
    /* Optional: an open request whose last canopy_response_write_nb returned
     * CANOPY_AGAIN may write again. */
    canopy_request_handler_fn drain_handler;
    /* Optional: a frame arrived on an upgraded request that the handler kept
     * open. Without it, frames are left for canopy_websocket_receive. */
    canopy_websocket_handler_fn websocket_handler;
    /* Optional: the router aborted an open request after its handler returned
     * (client gone, timeout, router quitting). The request is still the
     * app's: it must call canopy_request_done (every call on it now returns
     * CANOPY_CLOSED). */
    canopy_request_handler_fn close_handler;
    /* Optional: called once per context when the app starts quitting
     * (canopy_app_quit, the router's quit message, or request_limit reached);
     * the loop then finishes the context's open requests and returns. */
    canopy_context_handler_fn quit_handler;

    /* Opaque to the library; canopy_app_user_data returns it. */
    void* user_data;

    /*
     * How this process reaches the router: the attachment text, or NULL to
     * read the environment variable CANOPY_APP_INIT (then unset, so that
     * programs the app starts do not inherit it). The host sets the variable
     * for external programs and for module workers alike, so a module passes
     * NULL too. The text is copied; the library takes ownership of every
     * descriptor it names (they are made close-on-exec) and closes them in
     * canopy_app_free. Format (version 1), space-separated key=value pairs:
     *
     *   canopy-app=1 socket=FD channel=FD queue=FD router=FD
     *   consumers=INDEX:FD[,INDEX:FD...] geometry=QUEUE,SLOTS,MAX_CONSUMERS,CREDIT
     *   segments=CHUNK_SIZE,CHUNK_COUNT [shm=BYTES] [requests=N]
     *
     * socket: the process's Unix seqpacket socket to the router (segment and
     * file descriptors, ready and quit messages; see docs/sdk.md); channel:
     * the application's channel memfd; queue: the request queue eventfd;
     * router: the router's doorbell eventfd; consumers: the consumer slots
     * this process may use, one per context, with each slot's doorbell
     * eventfd (the first serves the main context); geometry and segments:
     * the ChannelGeometry and SegmentGeometry the router used; shm: this
     * process's shared-memory budget for responses (default 100 MiB);
     * requests: stop after this many requests (0 or absent: no limit).
     * Unknown keys are ignored; another canopy-app version is refused
     * (CANOPY_UNSUPPORTED).
     */
    const char* attachment;

    /* Largest WebSocket frame payload delivered whole; a bigger frame aborts
     * the request (the router is expected to enforce a smaller limit).
     * 0 means 1 MiB. */
    size_t max_websocket_frame;
} canopy_app_init_t;

/* Size of the init struct of each minor, for hosts reading older callers. */
#define CANOPY_APP_INIT_SIZE_1_0 sizeof(canopy_app_init_t)

/* ---- Application -------------------------------------------------------- */

/*
 * Attaches to the router as the attachment describes, creates the main
 * context, and tells the router the process is ready. On success *app is the
 * caller's until canopy_app_free. Call once per process, on any thread.
 * CANOPY_INVALID for a NULL or incomplete init, CANOPY_UNSUPPORTED for
 * another ABI major or attachment version, CANOPY_ERROR when attaching fails.
 */
CANOPY_APP_API int canopy_app_init(const canopy_app_init_t* init, canopy_app_t** app);

/*
 * Tells the router, instead of canopy_app_init, that this process cannot
 * serve, and why: the router reports `reason` as the process's failure to
 * start (in the log, and in the answer to the configuration change that
 * started the application) instead of "exited before it was ready". The
 * caller exits next. `attachment` as canopy_app_init_t.attachment (NULL:
 * the environment variable, left as it is); its descriptors are left open.
 * `reason` is UTF-8 text, read during the call; the router keeps its first
 * 1024 bytes. Any thread. CANOPY_INVALID for a NULL reason or no
 * attachment, CANOPY_UNSUPPORTED for another attachment version,
 * CANOPY_ERROR when it cannot be sent.
 */
CANOPY_APP_API int canopy_app_start_failed(const char* attachment, const char* reason);

/* The main context, created by canopy_app_init; owned by the app and freed by
 * canopy_app_free. Any thread. */
CANOPY_APP_API canopy_context_t* canopy_app_main_context(canopy_app_t* app);

/* init->user_data. Any thread. */
CANOPY_APP_API void* canopy_app_user_data(const canopy_app_t* app);

/*
 * Asks every context to quit gracefully: stop taking requests, finish the
 * open ones, return from canopy_run. Any thread; async-signal-safe, so a
 * SIGTERM handler may call it. Idempotent.
 */
CANOPY_APP_API void canopy_app_quit(canopy_app_t* app);

/* 1 once the app is quitting (for any reason), else 0. Any thread. */
CANOPY_APP_API int canopy_app_quitting(const canopy_app_t* app);

/*
 * Frees the app, its main context and every descriptor of the attachment.
 * Every extra context must have been freed and no thread may be inside a
 * canopy_* call on this app. Requests still open are aborted.
 */
CANOPY_APP_API void canopy_app_free(canopy_app_t* app);

/* Writes one line "canopy-app: <message>" to stderr (the server log for
 * processes canopyd starts). `message` is copied. Any thread. */
CANOPY_APP_API void canopy_app_log(canopy_app_t* app, int level, const char* message);

/* ---- Contexts ----------------------------------------------------------- */

/*
 * A context for another thread, using the next free consumer slot of the
 * attachment. Any thread. On success *context belongs to the caller until
 * canopy_context_free. CANOPY_NO_MEMORY when every slot is in use (the
 * router gives a process as many slots as its `threads` setting).
 */
CANOPY_APP_API int canopy_context_create(canopy_app_t* app, canopy_context_t** context);

/* Frees a context made by canopy_context_create (not the main context); its
 * open requests are aborted. From the thread that used it, after its last
 * canopy_run returned. */
CANOPY_APP_API void canopy_context_free(canopy_context_t* context);

/* The app of a context. Any thread. */
CANOPY_APP_API canopy_app_t* canopy_context_app(const canopy_context_t* context);

/* Per-context opaque pointer for the caller, NULL at first. Context thread. */
CANOPY_APP_API void canopy_context_set_user_data(canopy_context_t* context, void* data);
CANOPY_APP_API void* canopy_context_user_data(const canopy_context_t* context);

/*
 * Serves requests on this context until the app quits and the context's
 * open requests are done: waits (in poll(), on the queue's eventfd, the
 * context's doorbell eventfd and the router socket; never a timed poll) and
 * dispatches to the callbacks. Returns CANOPY_OK after a graceful quit,
 * CANOPY_STATE when called re-entrantly, CANOPY_ERROR when the transport
 * failed. Context thread.
 */
CANOPY_APP_API int canopy_run(canopy_context_t* context);

/*
 * One step of canopy_run for foreign event loops: waits up to timeout_ms
 * (0: not at all, negative: forever) for something to do, does all that is
 * ready, and returns. CANOPY_OK when it dispatched something, CANOPY_AGAIN
 * when nothing was ready, CANOPY_QUIT when the app is quitting and the
 * context has no open request. Context thread.
 */
CANOPY_APP_API int canopy_run_once(canopy_context_t* context, int timeout_ms);

/*
 * The descriptors a foreign event loop should watch for readability on
 * behalf of this context; call canopy_run_once(context, 0) when any is
 * readable. Writes up to *count descriptors to fds and sets *count to the
 * number there are (at most 4). The descriptors stay owned by the library
 * and valid until the context is freed. Context thread.
 *
 * The order is fixed: [0] the context's doorbell, [1] the router socket,
 * [2] the request queue, [3] the quit event. Once the quit_handler ran,
 * [2] and [3] may stay readable for good and must no longer be watched
 * (canopy_run_once takes no request then); [0] and [1] carry the events of
 * the requests still open. [1] stays readable for good once the router
 * closed it: after canopy_run_once(context, 0) returned CANOPY_AGAIN it is
 * still readable only in that case.
 */
CANOPY_APP_API int canopy_context_fds(const canopy_context_t* context, int* fds, size_t* count);

/* ---- Requests: fields ---------------------------------------------------
 * Every string is valid until canopy_request_done on the request. Context
 * thread. */

CANOPY_APP_API canopy_context_t* canopy_request_context(const canopy_request_t* request);
CANOPY_APP_API canopy_str_t canopy_request_method(const canopy_request_t* request);
/* The raw target with the query, exactly as the client sent it. */
CANOPY_APP_API canopy_str_t canopy_request_target(const canopy_request_t* request);
/* The decoded, normalised path (reflects a `rewrite`). */
CANOPY_APP_API canopy_str_t canopy_request_path(const canopy_request_t* request);
/* The raw text after the first '?', empty when none. */
CANOPY_APP_API canopy_str_t canopy_request_query(const canopy_request_t* request);
/* "HTTP/1.0" or "HTTP/1.1". */
CANOPY_APP_API canopy_str_t canopy_request_version(const canopy_request_t* request);
/* The client's address as text; "unix:..." for Unix-socket peers. */
CANOPY_APP_API canopy_str_t canopy_request_remote(const canopy_request_t* request);
/* The address of the listening socket that accepted the connection. */
CANOPY_APP_API canopy_str_t canopy_request_local_address(const canopy_request_t* request);
CANOPY_APP_API uint16_t canopy_request_local_port(const canopy_request_t* request);
/* The normalised Host (lower case, no port), "localhost" when absent. */
CANOPY_APP_API canopy_str_t canopy_request_server_name(const canopy_request_t* request);
/* The application target the route passed the request to: TARGET of
 * "pass": "applications/NAME/TARGET", the application's first target when
 * the pass names none, empty when the application has no `targets`. */
CANOPY_APP_API canopy_str_t canopy_request_app_target(const canopy_request_t* request);
/* 1 when the connection (or the forwarded protocol) is HTTPS. */
CANOPY_APP_API int canopy_request_tls(const canopy_request_t* request);
/* The Content-Length, or -1 when the length is not known in advance. */
CANOPY_APP_API int64_t canopy_request_content_length(const canopy_request_t* request);
/* 1 when the request asks for a WebSocket upgrade (GET with Upgrade:
 * websocket, Connection: upgrade and a Sec-WebSocket-Key). */
CANOPY_APP_API int canopy_request_is_websocket_handshake(const canopy_request_t* request);

/* Header fields in the order received, names as sent. */
CANOPY_APP_API size_t canopy_request_header_count(const canopy_request_t* request);
/* The field at `index`; CANOPY_INVALID when index >= count. */
CANOPY_APP_API int canopy_request_header(const canopy_request_t* request, size_t index,
                                         canopy_str_t* name, canopy_str_t* value);
/* The first field named `name` (ASCII case-insensitive); CANOPY_NOT_FOUND
 * when there is none. `name` is read during the call only. */
CANOPY_APP_API int canopy_request_find_header(const canopy_request_t* request, const char* name,
                                              size_t name_length, canopy_str_t* value);

/* Per-request opaque pointer for the caller, NULL at first. */
CANOPY_APP_API void canopy_request_set_user_data(canopy_request_t* request, void* data);
CANOPY_APP_API void* canopy_request_user_data(const canopy_request_t* request);

/* ---- Requests: body ------------------------------------------------------ */

/*
 * Reads body bytes into buffer: waits until at least one byte is there (or
 * the body ended), then copies up to `capacity` bytes without waiting again.
 * *got is 0 exactly at the end of the body. CANOPY_CLOSED when the router
 * aborted the request. The library holds at most a few chunks of body at a
 * time, whatever the body's size. Context thread.
 */
CANOPY_APP_API int canopy_request_read(canopy_request_t* request, void* buffer, size_t capacity,
                                       size_t* got);

/*
 * As canopy_request_read without waiting: CANOPY_AGAIN when no byte is there
 * yet; the data_handler runs when more arrives. Context thread.
 */
CANOPY_APP_API int canopy_request_read_nb(canopy_request_t* request, void* buffer, size_t capacity,
                                          size_t* got);

/* ---- Responses -----------------------------------------------------------
 * Order: init, add_header..., send_headers (or the first write), write /
 * send_file..., done. A call out of order returns CANOPY_STATE and changes
 * nothing. Context thread. */

/* Starts the response with `status` (100-999); header_count_hint sizes the
 * header storage (0 is fine). May be called again to start over until the
 * headers are sent. */
CANOPY_APP_API int canopy_response_init(canopy_request_t* request, uint16_t status,
                                        uint32_t header_count_hint);

/* Adds a header field. Name and value are copied. CANOPY_INVALID for an empty
 * name, a name over 255 bytes or with characters outside the HTTP token set,
 * or a value with CR, LF or NUL. */
CANOPY_APP_API int canopy_response_add_header(canopy_request_t* request, const char* name,
                                              size_t name_length, const char* value,
                                              size_t value_length);

/* Sends the status and headers to the router now (useful before a long
 * body). */
CANOPY_APP_API int canopy_response_send_headers(canopy_request_t* request);

/*
 * Sends body bytes (sending the headers first if needed). Copies `data` into
 * shared memory and returns once all of it is handed to the router; waits
 * while the router holds as much of this response as it allows (a slow
 * client slows the writer, it never grows memory). CANOPY_CLOSED when the
 * client is gone. Context thread.
 */
CANOPY_APP_API int canopy_response_write(canopy_request_t* request, const void* data,
                                         size_t length);

/*
 * As canopy_response_write without waiting: copies what fits now and sets
 * *written; CANOPY_AGAIN when nothing fit (the drain_handler runs when more
 * fits). Context thread.
 */
CANOPY_APP_API int canopy_response_write_nb(canopy_request_t* request, const void* data,
                                            size_t length, size_t* written);

/*
 * Sends `length` bytes of the file at `offset` as the next part of the body;
 * the router sendfile()s it. The descriptor is duplicated into the router,
 * so the caller keeps `fd` and may close it when this returns. The file must
 * not shrink until the request is done. Waits for credit like
 * canopy_response_write. Context thread.
 */
CANOPY_APP_API int canopy_response_send_file(canopy_request_t* request, int fd, uint64_t offset,
                                             uint64_t length);

/*
 * Finishes the request. rc == CANOPY_OK ends the response normally (a
 * response never started becomes "200, Content-Type: text/plain", empty);
 * any other rc aborts it (the router answers 503 if the headers were not
 * sent; else the client gets every body byte written so far and then the
 * connection is closed). Unread body is discarded. After done, every call
 * on the request returns CANOPY_STATE, and the request is freed when
 * control returns to the context's loop (the end of the callback that
 * called done, or the next canopy_run_once); do not touch it after that.
 * CANOPY_STATE for a second done. Context thread.
 */
CANOPY_APP_API int canopy_request_done(canopy_request_t* request, int rc);

/* ---- WebSocket ------------------------------------------------------------
 * After canopy_websocket_accept the request stays open until
 * canopy_request_done; frames travel in both directions on it. The router
 * performs the handshake (101 and Sec-WebSocket-Accept), masking, ping
 * replies and close-code checks. Context thread. */

/* Accepts the upgrade: sends 101 with any headers added by
 * canopy_response_add_header after canopy_response_init (init is optional).
 * CANOPY_STATE when the request is no handshake or headers were sent. */
CANOPY_APP_API int canopy_websocket_accept(canopy_request_t* request);

/* Sends one frame (payload copied; the router masks nothing, servers do not
 * mask). Waits for credit like canopy_response_write. */
CANOPY_APP_API int canopy_websocket_send(canopy_request_t* request, uint8_t opcode, int fin,
                                         const void* payload, size_t length);

/*
 * Waits for the next frame of an accepted request and fills *frame (payload
 * valid until the next receive or done). For apps that do not set a
 * websocket_handler. CANOPY_CLOSED when the router closed the connection.
 */
CANOPY_APP_API int canopy_websocket_receive(canopy_request_t* request,
                                            canopy_websocket_frame_t* frame);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CANOPY_APP_H */
