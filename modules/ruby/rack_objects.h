// The Ruby objects a Rack request sees besides its env strings: rack.input
// (Canopy::RackInput) and the stream a Rack 3 streaming body is called with
// (Canopy::RackStream), both C classes, plus sending body strings. Every
// function here needs the GVL.
#pragma once

#include <canopy/app.h>
#include <ruby.h>

#include <cstdint>
#include <string>

#include "request_body.h"

namespace canopy::ruby {

// rack.input's state for one request: the body as read so far (rewindable)
// and the line gets() is assembling. Lives on the serving thread's stack,
// outside every Ruby call, for the duration of the request.
struct InputState {
    explicit InputState(canopy_request_t* request);
    RequestBody body;
    std::string line;
};

// What the response of one request has done so far. Plain data: the code
// that uses it runs inside Ruby calls.
struct RackCall {
    canopy_request_t* request = nullptr;
    InputState* input = nullptr;
    bool headers_sent = false;    // the response head went (or may have gone) out
    bool client_gone = false;     // a send returned CANOPY_CLOSED
    int send_error = CANOPY_OK;   // the code of a failed send
    int64_t content_length = -1;  // the application's Content-Length, -1: none
    uint64_t body_sent = 0;
    VALUE body = Qnil;  // the response body, for close
    VALUE input_object = Qnil;
    VALUE stream_object = Qnil;
};

// Spill rack.input to a temporary file beyond this many bytes.
constexpr size_t kInputMemoryLimit = 1024 * 1024;

// The directory of the temporary files ($TMPDIR, else /tmp); read once.
void chooseTempDirectory();

// Defines Canopy::RackInput and Canopy::RackStream. Raises on failure (run
// under rb_protect).
void defineRackClasses(VALUE canopy_module);

// New objects pointing at the request's state; they raise IOError once
// detached. May raise.
VALUE newInput(InputState* input);
VALUE newStream(RackCall* call);
// Cuts an object made above from its request (no Ruby call, cannot raise).
void detachObject(VALUE object);

// Sends a String as body bytes (headers first when needed), no more than
// the application's Content-Length allows, with the GVL released while the
// SDK waits; what is sent cannot change meanwhile. Returns a
// CANOPY_* code and records it in `call`; raises only to deliver a pending
// interrupt (Thread#raise, a signal) to this thread.
int sendString(RackCall* call, VALUE string);

// Runs function(argument) without the GVL; interrupts that arrive meanwhile
// are left pending (the function is not interruptible). Cannot raise.
void withoutGvl(void* (*function)(void*), void* argument);

}  // namespace canopy::ruby
