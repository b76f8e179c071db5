// The Python objects a WSGI request sees besides its environ strings:
// wsgi.input, wsgi.errors, start_response (with its write()), and
// wsgi.file_wrapper. Heap types made once per interpreter. Every function
// here needs the GIL.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <canopy/app.h>

#include <cstdint>
#include <string>

namespace canopy::python {

// What the objects of one request share; lives on the serving thread's
// stack for the duration of the request. Objects the application keeps
// afterwards are detached (their pointer to it is cleared) and raise.
struct RequestState {
    canopy_request_t* request = nullptr;
    bool start_response_called = false;
    bool headers_sent = false;  // the response head went (or may have gone) out
    bool client_gone = false;
    int64_t content_length = -1;  // the application's Content-Length, -1: none
    uint64_t body_sent = 0;
    // wsgi.input: body bytes read from the SDK and not yet consumed.
    std::string input_buffer;
    size_t input_offset = 0;
    bool input_ended = false;
};

// Creates the types; false with a Python exception set on failure.
bool createWsgiTypes();

// New references, or NULL with an exception set.
PyObject* newInput(RequestState* state);
PyObject* newStartResponse(RequestState* state);
PyObject* newErrors();
// The wsgi.file_wrapper type (borrowed).
PyObject* fileWrapperType();

// Clears the object's pointer to its request (input or start_response).
void detachInput(PyObject* input);
void detachStartResponse(PyObject* start_response);

// If `object` is a wsgi.file_wrapper, its file-like object (borrowed);
// else NULL.
PyObject* wrappedFile(PyObject* object);

// Sends body bytes, no more than the application's Content-Length allows,
// with the GIL released while the SDK waits. Returns a CANOPY_* code.
int sendBody(RequestState& state, const char* data, size_t length);

// Writes whatever wsgi.errors holds that is not a full line yet.
void flushErrors();

}  // namespace canopy::python
