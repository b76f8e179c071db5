#include "rack_objects.h"

#include <ruby/encoding.h>
#include <ruby/thread.h>

#include <algorithm>
#include <cstdlib>

namespace canopy::ruby {

namespace {

// Read and copy at most this much per step of read()/each.
constexpr long kReadStep = 16 * 1024;

char temp_directory[4096] = "/tmp";

VALUE input_class = Qnil;
VALUE stream_class = Qnil;

const rb_data_type_t input_type = {
    "Canopy::RackInput",         {nullptr, nullptr, nullptr, {nullptr}}, nullptr, nullptr,
    RUBY_TYPED_FREE_IMMEDIATELY,
};

const rb_data_type_t stream_type = {
    "Canopy::RackStream",        {nullptr, nullptr, nullptr, {nullptr}}, nullptr, nullptr,
    RUBY_TYPED_FREE_IMMEDIATELY,
};

// ---- reading the body from the router ----------------------------------

struct ReadCall {
    canopy_request_t* request;
    char* buffer;
    size_t capacity;
    size_t* got;
    int rc;
    bool ran;
};

void* readWithoutGvl(void* argument) {
    auto* read = static_cast<ReadCall*>(argument);
    read->rc = canopy_request_read(read->request, read->buffer, read->capacity, read->got);
    read->ran = true;
    return nullptr;
}

// RequestBody's source. CANOPY_AGAIN when an interrupt is pending for this
// thread: the Ruby method then delivers it and retries.
int readFromRouter(void* context, char* buffer, size_t capacity, size_t* got) {
    ReadCall read{static_cast<canopy_request_t*>(context), buffer, capacity, got, CANOPY_OK, false};
    rb_thread_call_without_gvl2(readWithoutGvl, &read, nullptr, nullptr);
    return read.ran ? read.rc : CANOPY_AGAIN;
}

[[noreturn]] void raiseReadError(InputState* input, int rc) {
    if (rc == RequestBody::kStorageError) {
        rb_raise(rb_eIOError, "%s", input->body.error().c_str());
    }
    rb_raise(rb_eIOError, "cannot read the request body: %s", canopy_strerror(rc));
}

InputState* openInput(VALUE self) {
    auto* input = static_cast<InputState*>(rb_check_typeddata(self, &input_type));
    if (input == nullptr) {
        rb_raise(rb_eIOError, "rack.input is closed: its request has finished");
    }
    return input;
}

// ---- rack.input -----------------------------------------------------------

// read([length[, buffer]]) as the Rack SPEC has it: without length the
// rest ("" at the end), with length up to that many bytes (nil at the end).
VALUE readInput(InputState* input, int argc, VALUE* argv) {
    VALUE length_argument = Qnil;
    VALUE buffer = Qnil;
    rb_scan_args(argc, argv, "02", &length_argument, &buffer);
    long length = -1;
    if (!NIL_P(length_argument)) {
        length = NUM2LONG(length_argument);
        if (length < 0) {
            rb_raise(rb_eArgError, "negative length %ld given", length);
        }
    }
    if (NIL_P(buffer)) {
        buffer = rb_str_buf_new(length >= 0 ? std::min(length, kReadStep) : kReadStep);
    } else {
        StringValue(buffer);
        rb_str_modify(buffer);
        rb_str_set_len(buffer, 0);
    }
    rb_enc_associate(buffer, rb_ascii8bit_encoding());
    if (length == 0) {
        return buffer;
    }
    char step[kReadStep];
    long have = 0;
    while (length < 0 || have < length) {
        size_t want =
            static_cast<size_t>(length < 0 ? kReadStep : std::min(kReadStep, length - have));
        size_t got = 0;
        int rc = input->body.read(step, want, &got);
        if (rc == CANOPY_AGAIN) {
            rb_thread_check_ints();
            continue;
        }
        if (rc != CANOPY_OK) {
            raiseReadError(input, rc);
        }
        if (got == 0) {
            break;
        }
        rb_str_cat(buffer, step, static_cast<long>(got));
        have += static_cast<long>(got);
    }
    return length > 0 && have == 0 ? Qnil : buffer;
}

VALUE inputRead(int argc, VALUE* argv, VALUE self) {
    return readInput(openInput(self), argc, argv);
}

VALUE getsInput(InputState* input) {
    input->line.clear();
    for (;;) {
        int rc = input->body.readLine(input->line);
        if (rc == CANOPY_OK) {
            break;
        }
        if (rc != CANOPY_AGAIN) {
            raiseReadError(input, rc);
        }
        // What was read stays in input->line; the next call continues it.
        rb_thread_check_ints();
    }
    if (input->line.empty()) {
        return Qnil;
    }
    return rb_str_new(input->line.data(), static_cast<long>(input->line.size()));
}

VALUE inputGets(VALUE self) {
    return getsInput(openInput(self));
}

VALUE inputEach(VALUE self) {
    RETURN_ENUMERATOR(self, 0, nullptr);
    for (VALUE line; !NIL_P(line = getsInput(openInput(self)));) {
        rb_yield(line);
    }
    return self;
}

VALUE inputRewind(VALUE self) {
    openInput(self)->body.rewind();
    return INT2FIX(0);
}

VALUE inputClose(VALUE /*self*/) {
    return Qnil;
}

// ---- the stream of a Rack 3 streaming body -------------------------------

RackCall* openStream(VALUE self) {
    auto* call = static_cast<RackCall*>(rb_check_typeddata(self, &stream_type));
    if (call == nullptr) {
        rb_raise(rb_eIOError, "the response stream is closed: its request has finished");
    }
    return call;
}

void raiseSendError(const RackCall* call) {
    if (call->client_gone) {
        rb_raise(rb_eIOError, "the client closed the connection");
    }
    rb_raise(rb_eIOError, "cannot send the response: %s", canopy_strerror(call->send_error));
}

VALUE streamWrite(VALUE self, VALUE data) {
    RackCall* call = openStream(self);
    VALUE text = rb_obj_as_string(data);
    if (sendString(call, text) != CANOPY_OK) {
        raiseSendError(call);
    }
    return LONG2NUM(RSTRING_LEN(text));
}

VALUE streamAppend(VALUE self, VALUE data) {
    streamWrite(self, data);
    return self;
}

struct HeadersCall {
    canopy_request_t* request;
    int rc;
};

void* sendHeadersWithoutGvl(void* argument) {
    auto* send = static_cast<HeadersCall*>(argument);
    send->rc = canopy_response_send_headers(send->request);
    return nullptr;
}

VALUE streamFlush(VALUE self) {
    RackCall* call = openStream(self);
    if (!call->headers_sent) {
        HeadersCall send{call->request, CANOPY_OK};
        rb_thread_call_without_gvl(sendHeadersWithoutGvl, &send, nullptr, nullptr);
        call->headers_sent = true;
        if (send.rc != CANOPY_OK) {
            call->send_error = send.rc;
            call->client_gone = send.rc == CANOPY_CLOSED;
            raiseSendError(call);
        }
    }
    return self;
}

VALUE streamRead(int argc, VALUE* argv, VALUE self) {
    RackCall* call = openStream(self);
    return readInput(call->input, argc, argv);
}

VALUE streamClose(VALUE self) {
    rb_ivar_set(self, rb_intern("@closed"), Qtrue);
    return Qnil;
}

VALUE streamClosed(VALUE self) {
    return RTEST(rb_ivar_get(self, rb_intern("@closed"))) ? Qtrue : Qfalse;
}

VALUE streamCloseHalf(VALUE /*self*/) {
    return Qnil;
}

// ---- sending ------------------------------------------------------------

struct WriteCall {
    canopy_request_t* request;
    const char* data;
    size_t length;
    int rc;
    bool ran;
};

void* writeWithoutGvl(void* argument) {
    auto* write = static_cast<WriteCall*>(argument);
    write->rc = canopy_response_write(write->request, write->data, write->length);
    write->ran = true;
    return nullptr;
}

struct Blocking {
    void* (*function)(void*);
    void* argument;
};

VALUE runBlocking(VALUE argument) {
    auto* blocking = reinterpret_cast<Blocking*>(argument);
    rb_thread_call_without_gvl(blocking->function, blocking->argument, nullptr, nullptr);
    return Qnil;
}

}  // namespace

InputState::InputState(canopy_request_t* request)
    : body(readFromRouter, request, kInputMemoryLimit, temp_directory) {}

void chooseTempDirectory() {
    const char* chosen = std::getenv("TMPDIR");
    if (chosen == nullptr || chosen[0] != '/' ||
        std::char_traits<char>::length(chosen) >= sizeof temp_directory) {
        chosen = "/tmp";
    }
    std::copy(chosen, chosen + std::char_traits<char>::length(chosen) + 1, temp_directory);
}

void defineRackClasses(VALUE canopy_module) {
    input_class = rb_define_class_under(canopy_module, "RackInput", rb_cObject);
    rb_undef_alloc_func(input_class);
    rb_define_method(input_class, "read", RUBY_METHOD_FUNC(inputRead), -1);
    rb_define_method(input_class, "gets", RUBY_METHOD_FUNC(inputGets), 0);
    rb_define_method(input_class, "each", RUBY_METHOD_FUNC(inputEach), 0);
    rb_define_method(input_class, "rewind", RUBY_METHOD_FUNC(inputRewind), 0);
    rb_define_method(input_class, "close", RUBY_METHOD_FUNC(inputClose), 0);

    stream_class = rb_define_class_under(canopy_module, "RackStream", rb_cObject);
    rb_undef_alloc_func(stream_class);
    rb_define_method(stream_class, "write", RUBY_METHOD_FUNC(streamWrite), 1);
    rb_define_method(stream_class, "<<", RUBY_METHOD_FUNC(streamAppend), 1);
    rb_define_method(stream_class, "flush", RUBY_METHOD_FUNC(streamFlush), 0);
    rb_define_method(stream_class, "read", RUBY_METHOD_FUNC(streamRead), -1);
    rb_define_method(stream_class, "close", RUBY_METHOD_FUNC(streamClose), 0);
    rb_define_method(stream_class, "closed?", RUBY_METHOD_FUNC(streamClosed), 0);
    rb_define_method(stream_class, "close_read", RUBY_METHOD_FUNC(streamCloseHalf), 0);
    rb_define_method(stream_class, "close_write", RUBY_METHOD_FUNC(streamCloseHalf), 0);
}

VALUE newInput(InputState* input) {
    return rb_data_typed_object_wrap(input_class, input, &input_type);
}

VALUE newStream(RackCall* call) {
    return rb_data_typed_object_wrap(stream_class, call, &stream_type);
}

void detachObject(VALUE object) {
    if (RB_TYPE_P(object, T_DATA)) {
        DATA_PTR(object) = nullptr;
    }
}

int sendString(RackCall* call, VALUE string) {
    uint64_t length = static_cast<uint64_t>(RSTRING_LEN(string));
    if (call->content_length >= 0) {
        uint64_t allowed = static_cast<uint64_t>(call->content_length);
        length = std::min(length, allowed > call->body_sent ? allowed - call->body_sent : 0);
    }
    if (length == 0) {
        return CANOPY_OK;
    }
    // The bytes are read without the GVL: they must not change meanwhile. A
    // frozen string cannot; another is sent through a frozen copy, which
    // shares its buffer (no copy of a long string) until either is changed.
    // Locking the string instead (rb_str_locktmp) would fail when threads
    // send the same string, a constant body, at the same time.
    VALUE frozen = OBJ_FROZEN(string) ? string : rb_str_new_frozen(string);
    WriteCall write{call->request, RSTRING_PTR(frozen), static_cast<size_t>(length), CANOPY_OK,
                    false};
    for (;;) {
        rb_thread_call_without_gvl2(writeWithoutGvl, &write, nullptr, nullptr);
        if (write.ran) {
            break;
        }
        // An interrupt is pending: deliver it (this may raise), then go on.
        rb_thread_check_ints();
    }
    RB_GC_GUARD(frozen);
    if (write.rc != CANOPY_STATE && write.rc != CANOPY_INVALID) {
        call->headers_sent = true;
    }
    if (write.rc == CANOPY_OK) {
        call->body_sent += length;
    } else {
        call->send_error = write.rc;
        call->client_gone = write.rc == CANOPY_CLOSED;
    }
    return write.rc;
}

void withoutGvl(void* (*function)(void*), void* argument) {
    Blocking blocking{function, argument};
    int state = 0;
    rb_protect(runBlocking, reinterpret_cast<VALUE>(&blocking), &state);
    if (state != 0) {
        // An interrupt for a request that is over: nothing is left to stop.
        rb_set_errinfo(Qnil);
    }
}

}  // namespace canopy::ruby
