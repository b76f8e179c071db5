// Serving one request with a WSGI application (PEP 3333).
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <canopy/app.h>

#include <string>

namespace canopy::python {

// What every request of the process shares. Made once in the prototype.
struct WsgiApplication {
    PyObject* callable = nullptr;      // the application object
    PyObject* base_environ = nullptr;  // keys fixed per process (wsgi.*, SERVER_SOFTWARE)
    std::string prefix;                // SCRIPT_NAME when the path is under it
};

// Builds the per-process environ keys; NULL with an exception on failure.
PyObject* makeBaseEnviron(bool multithread);

// Runs the application for `request` and finishes the request (always:
// canopy_request_done is called before this returns). The calling thread
// holds the GIL; it is released around every wait in the SDK.
void serveRequest(canopy_request_t* request, const WsgiApplication& application);

}  // namespace canopy::python
