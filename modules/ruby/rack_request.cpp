#include "rack_request.h"

#include <fcntl.h>
#include <ruby/encoding.h>
#include <ruby/thread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string_view>

#include "rack_objects.h"
#include "rack_text.h"
#include "ruby_runtime.h"

// Everything below that runs inside rb_protect (the functions named *Ruby
// and their callees) keeps only plain data in its frames: Ruby may longjmp
// out of any of them.

namespace canopy::ruby {

namespace {

VALUE rack_application = Qnil;
VALUE base_env = Qnil;

// Frozen, deduplicated env keys and constant values, made once.
enum EnvKey {
    kRequestMethod,
    kRequestUri,
    kScriptName,
    kPathInfo,
    kQueryString,
    kServerName,
    kServerPort,
    kServerProtocol,
    kServerAddr,
    kRemoteAddr,
    kContentType,
    kContentLength,
    kUrlScheme,
    kRackInput,
    kHttp,
    kHttps,
    kKeyCount
};
constexpr const char* kKeyText[kKeyCount] = {
    "REQUEST_METHOD",  "REQUEST_URI", "SCRIPT_NAME",  "PATH_INFO",
    "QUERY_STRING",    "SERVER_NAME", "SERVER_PORT",  "SERVER_PROTOCOL",
    "SERVER_ADDR",     "REMOTE_ADDR", "CONTENT_TYPE", "CONTENT_LENGTH",
    "rack.url_scheme", "rack.input",  "http",         "https"};
VALUE keys[kKeyCount];

ID id_call = 0;
ID id_each = 0;
ID id_close = 0;
ID id_to_path = 0;

struct PrepareArguments {
    VALUE application;
    bool multithread;
};

VALUE prepareRuby(VALUE argument) {
    const auto* arguments = reinterpret_cast<const PrepareArguments*>(argument);
    id_call = rb_intern("call");
    id_each = rb_intern("each");
    id_close = rb_intern("close");
    id_to_path = rb_intern("to_path");
    VALUE kept = rb_ary_new();
    rb_ivar_set(canopyModule(), rb_intern("@rack_constants"), kept);
    for (int index = 0; index < kKeyCount; ++index) {
        // Values ("http", "https") are binary like every other env value.
        keys[index] = index >= kHttp
                          ? rb_enc_interned_str_cstr(kKeyText[index], rb_ascii8bit_encoding())
                          : rb_interned_str_cstr(kKeyText[index]);
        rb_ary_push(kept, keys[index]);
    }
    VALUE env = rb_hash_new();
    rb_ary_push(kept, env);
    rb_hash_aset(env, rb_interned_str_cstr("SCRIPT_NAME"), rb_str_new_cstr(""));
    rb_hash_aset(env, rb_interned_str_cstr("SERVER_SOFTWARE"), rb_str_new_cstr("Canopy"));
    rb_hash_aset(env, rb_interned_str_cstr("rack.version"),
                 rb_funcall(canopyModule(), rb_intern("rack_version"), 0));
    rb_hash_aset(
        env, rb_interned_str_cstr("rack.errors"),
        rb_class_new_instance(0, nullptr, rb_const_get(canopyModule(), rb_intern("ErrorStream"))));
    rb_hash_aset(env, rb_interned_str_cstr("rack.multithread"),
                 arguments->multithread ? Qtrue : Qfalse);
    rb_hash_aset(env, rb_interned_str_cstr("rack.multiprocess"), Qtrue);
    rb_hash_aset(env, rb_interned_str_cstr("rack.run_once"), Qfalse);
    rb_hash_aset(env, rb_interned_str_cstr("rack.hijack?"), Qfalse);
    rb_hash_aset(env, rb_interned_str_cstr("rack.hijack"), Qnil);
    rb_hash_aset(env, rb_interned_str_cstr("rack.hijack_io"), Qnil);
    base_env = env;
    rack_application = arguments->application;
    return Qnil;
}

VALUE newString(canopy_str_t text) {
    return rb_str_new(text.data, static_cast<long>(text.length));
}

std::string_view view(canopy_str_t text) {
    return {text.data, text.length};
}

// ---- the env ------------------------------------------------------------

void addRequestHeaders(VALUE env, canopy_request_t* request) {
    size_t count = canopy_request_header_count(request);
    bool have_type = false;
    bool have_length = false;
    for (size_t index = 0; index < count; ++index) {
        canopy_str_t name{};
        canopy_str_t value{};
        if (canopy_request_header(request, index, &name, &value) != CANOPY_OK) {
            continue;
        }
        if (isContentHeader(view(name))) {
            bool is_type = name.length == 12;  // "Content-Type"; else "Content-Length"
            bool& have = is_type ? have_type : have_length;
            if (!have) {
                rb_hash_aset(env, keys[is_type ? kContentType : kContentLength], newString(value));
                have = true;
            }
            continue;
        }
        VALUE key = Qnil;
        char buffer[256];
        if (name.length + 5 <= sizeof buffer) {
            writeEnvKeyOfHeader(view(name), buffer);
            key = rb_interned_str(buffer, static_cast<long>(name.length + 5));
        } else {
            key = rb_str_new(nullptr, static_cast<long>(name.length + 5));
            writeEnvKeyOfHeader(view(name), RSTRING_PTR(key));
            key = rb_str_freeze(key);
        }
        // Repeated fields are joined with ", ", as Unit does.
        VALUE earlier = rb_hash_lookup2(env, key, Qundef);
        if (earlier != Qundef) {
            rb_str_cat(earlier, ", ", 2);
            rb_str_cat(earlier, value.data, static_cast<long>(value.length));
        } else {
            rb_hash_aset(env, key, newString(value));
        }
    }
}

VALUE makeEnv(canopy_request_t* request, VALUE input) {
    VALUE env = rb_hash_dup(base_env);
    rb_hash_aset(env, keys[kRequestMethod], newString(canopy_request_method(request)));
    rb_hash_aset(env, keys[kRequestUri], newString(canopy_request_target(request)));
    rb_hash_aset(env, keys[kPathInfo], newString(canopy_request_path(request)));
    rb_hash_aset(env, keys[kQueryString], newString(canopy_request_query(request)));
    rb_hash_aset(env, keys[kServerName], newString(canopy_request_server_name(request)));
    char port[8];
    int port_length = std::snprintf(port, sizeof port, "%u",
                                    static_cast<unsigned>(canopy_request_local_port(request)));
    rb_hash_aset(env, keys[kServerPort], rb_str_new(port, port_length));
    rb_hash_aset(env, keys[kServerProtocol], newString(canopy_request_version(request)));
    rb_hash_aset(env, keys[kServerAddr], newString(canopy_request_local_address(request)));
    rb_hash_aset(env, keys[kRemoteAddr], newString(canopy_request_remote(request)));
    rb_hash_aset(env, keys[kUrlScheme], keys[canopy_request_tls(request) ? kHttps : kHttp]);
    rb_hash_aset(env, keys[kRackInput], input);
    addRequestHeaders(env, request);
    return env;
}

// ---- the response head ------------------------------------------------------

uint16_t statusOf(VALUE status) {
    if (FIXNUM_P(status)) {
        long code = FIX2LONG(status);
        if (code >= 100 && code <= 999) {
            return static_cast<uint16_t>(code);
        }
    } else if (RB_TYPE_P(status, T_STRING)) {
        if (auto code =
                statusFromText({RSTRING_PTR(status), static_cast<size_t>(RSTRING_LEN(status))})) {
            return *code;
        }
    }
    rb_raise(rb_eArgError, "invalid response status %" PRIsVALUE ": expected an Integer 100...999",
             rb_inspect(status));
}

void addField(RackCall* call, VALUE key, const char* value, size_t length) {
    int rc = canopy_response_add_header(call->request, RSTRING_PTR(key),
                                        static_cast<size_t>(RSTRING_LEN(key)), value, length);
    if (rc != CANOPY_OK) {
        rb_raise(rb_eArgError, "invalid response header %" PRIsVALUE ": %s", rb_inspect(key),
                 canopy_strerror(rc));
    }
}

void addHeader(RackCall* call, VALUE key, VALUE value) {
    if (!RB_TYPE_P(key, T_STRING)) {
        rb_raise(rb_eTypeError, "a response header name must be a String, not %" PRIsVALUE,
                 rb_obj_class(key));
    }
    std::string_view name(RSTRING_PTR(key), static_cast<size_t>(RSTRING_LEN(key)));
    if (name.substr(0, 5) == "rack.") {
        if (name == "rack.hijack") {
            rb_raise(rb_eNotImpError, "response hijacking (rack.hijack) is not supported");
        }
        return;  // server-side keys, not HTTP fields
    }
    bool is_length = equalsIgnoringCase(name, "Content-Length");
    if (RB_TYPE_P(value, T_STRING)) {
        // Rack 2: several fields joined with "\n".
        std::string_view rest(RSTRING_PTR(value), static_cast<size_t>(RSTRING_LEN(value)));
        std::string_view field;
        while (nextHeaderField(rest, field)) {
            addField(call, key, field.data(), field.size());
            if (is_length) {
                if (auto length = contentLengthFromText(field)) {
                    call->content_length = static_cast<int64_t>(*length);
                }
            }
        }
        return;
    }
    if (RB_TYPE_P(value, T_ARRAY)) {
        // Rack 3: one field per element.
        for (long index = 0; index < RARRAY_LEN(value); ++index) {
            VALUE item = RARRAY_AREF(value, index);
            if (!RB_TYPE_P(item, T_STRING)) {
                rb_raise(rb_eTypeError,
                         "the values of the response header %" PRIsVALUE
                         " must be Strings, not %" PRIsVALUE,
                         rb_inspect(key), rb_obj_class(item));
            }
            std::string_view text(RSTRING_PTR(item), static_cast<size_t>(RSTRING_LEN(item)));
            addField(call, key, text.data(), text.size());
            if (is_length) {
                if (auto length = contentLengthFromText(text)) {
                    call->content_length = static_cast<int64_t>(*length);
                }
            }
        }
        return;
    }
    rb_raise(rb_eTypeError,
             "the response header %" PRIsVALUE
             " must be a String or an Array of Strings, not %" PRIsVALUE,
             rb_inspect(key), rb_obj_class(value));
}

int headerOfHash(VALUE key, VALUE value, VALUE argument) {
    addHeader(reinterpret_cast<RackCall*>(argument), key, value);
    return ST_CONTINUE;
}

VALUE headerOfEach(RB_BLOCK_CALL_FUNC_ARGLIST(pair, argument)) {
    VALUE entry = rb_check_array_type(pair);
    if (NIL_P(entry) || RARRAY_LEN(entry) != 2) {
        rb_raise(rb_eTypeError, "the response headers must yield [name, value] pairs");
    }
    addHeader(reinterpret_cast<RackCall*>(argument), RARRAY_AREF(entry, 0), RARRAY_AREF(entry, 1));
    return Qnil;
}

// ---- the response body --------------------------------------------------

bool contentComplete(const RackCall* call) {
    return call->content_length >= 0 &&
           call->body_sent >= static_cast<uint64_t>(call->content_length);
}

// Sends one string of the body; false when sending must stop (the client
// left, the Content-Length was reached, the router failed).
bool sendPiece(RackCall* call, VALUE piece) {
    if (!RB_TYPE_P(piece, T_STRING)) {
        rb_raise(rb_eTypeError,
                 "the response body yielded a %" PRIsVALUE ", but every part must be a String",
                 rb_obj_class(piece));
    }
    if (sendString(call, piece) != CANOPY_OK) {
        return false;
    }
    return !contentComplete(call);
}

VALUE pieceOfEach(RB_BLOCK_CALL_FUNC_ARGLIST(piece, argument)) {
    if (!sendPiece(reinterpret_cast<RackCall*>(argument), piece)) {
        rb_iter_break();
    }
    return Qnil;
}

struct FileCall {
    canopy_request_t* request;
    int fd;
    uint64_t offset;
    uint64_t length;
    int rc;
};

void* sendFileWithoutGvl(void* argument) {
    auto* send = static_cast<FileCall*>(argument);
    send->rc = canopy_response_send_file(send->request, send->fd, send->offset, send->length);
    return nullptr;
}

// A body with to_path: the router sends the file with sendfile(). False
// when the file cannot be opened as a regular file (then it is iterated).
bool sendPath(RackCall* call, VALUE path) {
    if (!RB_TYPE_P(path, T_STRING)) {
        return false;
    }
    const char* name = StringValueCStr(path);
    int fd = ::open(name, O_RDONLY | O_CLOEXEC);
    struct stat status {};
    if (fd < 0) {
        return false;
    }
    if (::fstat(fd, &status) != 0 || !S_ISREG(status.st_mode)) {
        ::close(fd);
        return false;
    }
    uint64_t length = static_cast<uint64_t>(status.st_size);
    if (call->content_length >= 0) {
        length = std::min(length, static_cast<uint64_t>(call->content_length));
    }
    FileCall send{call->request, fd, 0, length, CANOPY_OK};
    if (length > 0) {
        // Not interruptible, so the descriptor is closed below whatever happens.
        rb_thread_call_without_gvl2(sendFileWithoutGvl, &send, nullptr, nullptr);
        if (send.rc != CANOPY_STATE && send.rc != CANOPY_INVALID) {
            call->headers_sent = true;
        }
    }
    ::close(fd);
    if (send.rc == CANOPY_OK) {
        call->body_sent += length;
    } else {
        call->send_error = send.rc;
        call->client_gone = send.rc == CANOPY_CLOSED;
    }
    return true;
}

// A fully known body (an Array of Strings) gets a Content-Length when the
// application gave none, so the answer needs no chunked framing.
void addLengthOfArray(RackCall* call, VALUE body, uint16_t status) {
    if (call->content_length >= 0 || status < 200 || status == 204 || status == 304) {
        return;
    }
    uint64_t total = 0;
    for (long index = 0; index < RARRAY_LEN(body); ++index) {
        VALUE piece = RARRAY_AREF(body, index);
        if (!RB_TYPE_P(piece, T_STRING)) {
            return;  // sendPiece reports it
        }
        total += static_cast<uint64_t>(RSTRING_LEN(piece));
    }
    char text[24];
    int length = std::snprintf(text, sizeof text, "%llu", static_cast<unsigned long long>(total));
    if (canopy_response_add_header(call->request, "Content-Length", 14, text,
                                   static_cast<size_t>(length)) == CANOPY_OK) {
        call->content_length = static_cast<int64_t>(total);
    }
}

struct BodyArguments {
    RackCall* call;
    uint16_t status;
    bool has_transfer_encoding;
};

VALUE sendBodyRuby(VALUE argument) {
    auto* arguments = reinterpret_cast<BodyArguments*>(argument);
    RackCall* call = arguments->call;
    VALUE body = call->body;
    if (rb_respond_to(body, id_to_path) && sendPath(call, rb_funcall(body, id_to_path, 0))) {
        return Qnil;
    }
    if (RB_TYPE_P(body, T_ARRAY)) {
        if (!arguments->has_transfer_encoding) {
            addLengthOfArray(call, body, arguments->status);
        }
        for (long index = 0; index < RARRAY_LEN(body); ++index) {
            if (!sendPiece(call, RARRAY_AREF(body, index))) {
                break;
            }
        }
        return Qnil;
    }
    if (rb_respond_to(body, id_each)) {
        rb_block_call(body, id_each, 0, nullptr, pieceOfEach, reinterpret_cast<VALUE>(call));
        return Qnil;
    }
    if (rb_respond_to(body, id_call)) {
        // Rack 3 streaming body: it writes to the stream itself.
        call->stream_object = newStream(call);
        rb_funcall(body, id_call, 1, call->stream_object);
        return Qnil;
    }
    rb_raise(rb_eTypeError,
             "the response body (a %" PRIsVALUE ") responds to none of each, to_path and call",
             rb_obj_class(body));
}

// The Rack SPEC: close is called whatever happened.
VALUE closeBodyRuby(VALUE argument) {
    auto* arguments = reinterpret_cast<BodyArguments*>(argument);
    VALUE body = arguments->call->body;
    if (rb_respond_to(body, id_close)) {
        rb_funcall(body, id_close, 0);
    }
    return Qnil;
}

struct TransferEncodingSearch {
    bool found;
};

int findTransferEncoding(VALUE key, VALUE /*value*/, VALUE argument) {
    if (RB_TYPE_P(key, T_STRING) &&
        equalsIgnoringCase({RSTRING_PTR(key), static_cast<size_t>(RSTRING_LEN(key))},
                           "Transfer-Encoding")) {
        reinterpret_cast<TransferEncodingSearch*>(argument)->found = true;
        return ST_STOP;
    }
    return ST_CONTINUE;
}

VALUE runApplicationRuby(VALUE argument) {
    auto* call = reinterpret_cast<RackCall*>(argument);
    call->input_object = newInput(call->input);
    VALUE env = makeEnv(call->request, call->input_object);
    VALUE result = rb_funcall(rack_application, id_call, 1, env);
    VALUE response = rb_check_array_type(result);
    if (NIL_P(response) || RARRAY_LEN(response) != 3) {
        rb_raise(rb_eTypeError,
                 "the application returned %" PRIsVALUE " instead of [status, headers, body]",
                 rb_inspect(result));
    }
    call->body = RARRAY_AREF(response, 2);
    BodyArguments arguments{call, 0, false};
    // From here on the body is the application's to close.
    VALUE status = RARRAY_AREF(response, 0);
    VALUE headers = RARRAY_AREF(response, 1);
    struct HeadArguments {
        BodyArguments* body;
        VALUE status;
        VALUE headers;
    } head{&arguments, status, headers};
    rb_ensure(
        [](VALUE value) -> VALUE {
            auto* head_arguments = reinterpret_cast<HeadArguments*>(value);
            BodyArguments* body_arguments = head_arguments->body;
            RackCall* rack_call = body_arguments->call;
            body_arguments->status = statusOf(head_arguments->status);
            if (int rc = canopy_response_init(rack_call->request, body_arguments->status, 8);
                rc != CANOPY_OK) {
                rb_raise(rb_eRuntimeError, "cannot start the response: %s", canopy_strerror(rc));
            }
            VALUE fields = head_arguments->headers;
            if (RB_TYPE_P(fields, T_HASH)) {
                rb_hash_foreach(fields, headerOfHash, reinterpret_cast<VALUE>(rack_call));
                TransferEncodingSearch search{false};
                rb_hash_foreach(fields, findTransferEncoding, reinterpret_cast<VALUE>(&search));
                body_arguments->has_transfer_encoding = search.found;
            } else if (rb_respond_to(fields, id_each)) {
                rb_block_call(fields, id_each, 0, nullptr, headerOfEach,
                              reinterpret_cast<VALUE>(rack_call));
                body_arguments->has_transfer_encoding = true;  // unknown: add no length
            } else {
                rb_raise(rb_eTypeError, "the response headers (a %" PRIsVALUE ") are not a Hash",
                         rb_obj_class(fields));
            }
            return sendBodyRuby(reinterpret_cast<VALUE>(body_arguments));
        },
        reinterpret_cast<VALUE>(&head), closeBodyRuby, reinterpret_cast<VALUE>(&arguments));
    return Qnil;
}

// ---- finishing ----------------------------------------------------------

struct DoneCall {
    canopy_request_t* request;
    int rc;
};

void* doneWithoutGvl(void* argument) {
    auto* done = static_cast<DoneCall*>(argument);
    (void)canopy_request_done(done->request, done->rc);
    return nullptr;
}

void finish(RackCall& call, int rc) {
    DoneCall done{call.request, rc};
    withoutGvl(doneWithoutGvl, &done);
}

struct ErrorAnswer {
    canopy_request_t* request;
    bool ok;
};

void* answerErrorWithoutGvl(void* argument) {
    auto* answer = static_cast<ErrorAnswer*>(argument);
    static constexpr std::string_view kBody = "Internal Server Error\n";
    answer->ok =
        canopy_response_init(answer->request, 500, 2) == CANOPY_OK &&
        canopy_response_add_header(answer->request, "Content-Type", 12, "text/plain", 10) ==
            CANOPY_OK &&
        canopy_response_add_header(answer->request, "Content-Length", 14, "22", 2) == CANOPY_OK &&
        canopy_response_write(answer->request, kBody.data(), kBody.size()) == CANOPY_OK;
    return nullptr;
}

std::string describeRequest(canopy_request_t* request) {
    return std::string(view(canopy_request_method(request))) + " " +
           std::string(view(canopy_request_target(request)));
}

// Logs why the request failed; answers 500 if nothing was sent yet, else
// aborts (the router closes the connection).
void fail(RackCall& call, const std::string& error) {
    std::string what = describeRequest(call.request);
    if (call.client_gone) {
        logLine(CANOPY_LOG_INFO, what + ": the client closed the connection");
        finish(call, CANOPY_ERROR);
        return;
    }
    if (error.empty()) {
        logLine(CANOPY_LOG_ERROR,
                what + ": cannot send the response: " + canopy_strerror(call.send_error));
    } else {
        logLine(CANOPY_LOG_ERROR, what + ": the application failed");
        logLines(CANOPY_LOG_ERROR, error);
    }
    if (call.headers_sent) {
        finish(call, CANOPY_ERROR);
        return;
    }
    ErrorAnswer answer{call.request, false};
    withoutGvl(answerErrorWithoutGvl, &answer);
    finish(call, answer.ok ? CANOPY_OK : CANOPY_ERROR);
}

}  // namespace

std::string prepareRack(VALUE application, bool multithread) {
    PrepareArguments arguments{application, multithread};
    std::string error;
    if (protectedRun(prepareRuby, reinterpret_cast<VALUE>(&arguments), &error) == Qundef) {
        logLines(CANOPY_LOG_ERROR, error);
        return "cannot prepare the Rack env: " + firstLine(error);
    }
    return {};
}

void serveRequest(canopy_request_t* request) {
    InputState input(request);
    RackCall call;
    call.request = request;
    call.input = &input;
    std::string error;
    bool ran = protectedRun(runApplicationRuby, reinterpret_cast<VALUE>(&call), &error) != Qundef;
    detachObject(call.input_object);
    detachObject(call.stream_object);
    if (ran && call.send_error == CANOPY_OK) {
        finish(call, CANOPY_OK);
    } else {
        fail(call, error);
    }
}

}  // namespace canopy::ruby
