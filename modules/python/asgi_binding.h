// The `_canopy` Python module: libcanopy's non-blocking request calls and
// run_once, as asgi_server.py (the ASGI protocol, in Python) uses them from
// an asyncio loop. Every function here needs the GIL; the SDK callbacks run
// inside Context.run_once, which Python calls with the GIL held.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <canopy/app.h>

#include <string>

namespace canopy::python {

// Registers `_canopy` as a built-in module and imports it, then compiles
// the embedded asgi_server.py as the module `canopy_asgi`. Returns the
// latter (new reference) or NULL with an exception set.
PyObject* loadAsgiServer();

// Fills the callbacks of an ASGI worker: each finds the Python object of
// its context or request and calls its on_* method.
void setAsgiCallbacks(canopy_app_init_t& init);

// A `_canopy.Context` for `context` (new reference, NULL with an exception
// set). detachAsgiContext() clears its pointer once the context is freed.
PyObject* newAsgiContext(canopy_context_t* context);
void detachAsgiContext(PyObject* context);

}  // namespace canopy::python
