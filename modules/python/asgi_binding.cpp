#include "asgi_binding.h"

#include <cctype>

#include "asgi_server_source.h"  // kAsgiServerSource, generated from asgi_server.py
#include "python_runtime.h"

namespace canopy::python {

namespace {

PyObject* bytesOf(canopy_str_t text) {
    return PyBytes_FromStringAndSize(text.data, static_cast<Py_ssize_t>(text.length));
}

PyObject* textOf(canopy_str_t text) {
    return PyUnicode_DecodeLatin1(text.data, static_cast<Py_ssize_t>(text.length), nullptr);
}

// A failed call into asgi_server.py from a callback: logged, never raised
// into the SDK's loop.
void logCallbackFailure(const char* what) {
    std::string traceback = takeExceptionText();
    logLine(CANOPY_LOG_ERROR, std::string("ASGI: ") + what + " failed");
    logLines(CANOPY_LOG_ERROR, traceback);
}

// ---- _canopy.Request --------------------------------------------------------

struct RequestObject {
    PyObject_HEAD canopy_request_t* request;  // NULL once done
    PyObject* owner;                          // the cycle of asgi_server.py
};

PyTypeObject* request_type = nullptr;

bool requireOpen(RequestObject* self) {
    if (self->request == nullptr) {
        PyErr_SetString(PyExc_RuntimeError, "the request is finished");
        return false;
    }
    return true;
}

// Raises for an SDK code other than OK: CLOSED is ConnectionError (the
// client or the router went away), the rest RuntimeError.
PyObject* raiseCode(int code, const char* what) {
    if (code == CANOPY_CLOSED) {
        PyErr_Format(PyExc_ConnectionError, "%s: the connection is closed", what);
    } else if (code == CANOPY_INVALID) {
        PyErr_Format(PyExc_ValueError, "%s: invalid argument", what);
    } else {
        PyErr_Format(PyExc_RuntimeError, "%s: %s", what, canopy_strerror(code));
    }
    return nullptr;
}

void requestDealloc(PyObject* object) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    Py_CLEAR(self->owner);
    PyTypeObject* type = Py_TYPE(object);
    type->tp_free(object);
    Py_DECREF(type);
}

#define CANOPY_TEXT_FIELD(field)                                                            \
    PyObject* get_##field(PyObject* object, void*) {                                        \
        auto* self = reinterpret_cast<RequestObject*>(object);                              \
        return requireOpen(self) ? textOf(canopy_request_##field(self->request)) : nullptr; \
    }
#define CANOPY_BYTES_FIELD(field)                                                            \
    PyObject* get_##field(PyObject* object, void*) {                                         \
        auto* self = reinterpret_cast<RequestObject*>(object);                               \
        return requireOpen(self) ? bytesOf(canopy_request_##field(self->request)) : nullptr; \
    }
CANOPY_TEXT_FIELD(method)
CANOPY_TEXT_FIELD(version)
CANOPY_TEXT_FIELD(remote)
CANOPY_TEXT_FIELD(local_address)
CANOPY_BYTES_FIELD(target)
CANOPY_BYTES_FIELD(path)
CANOPY_BYTES_FIELD(query)
#undef CANOPY_TEXT_FIELD
#undef CANOPY_BYTES_FIELD

PyObject* get_local_port(PyObject* object, void*) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    return requireOpen(self) ? PyLong_FromLong(canopy_request_local_port(self->request)) : nullptr;
}

PyObject* get_tls(PyObject* object, void*) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    return requireOpen(self) ? PyBool_FromLong(canopy_request_tls(self->request)) : nullptr;
}

PyObject* get_content_length(PyObject* object, void*) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    return requireOpen(self) ? PyLong_FromLongLong(canopy_request_content_length(self->request))
                             : nullptr;
}

PyObject* get_websocket(PyObject* object, void*) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    return requireOpen(self) ? PyBool_FromLong(canopy_request_is_websocket_handshake(self->request))
                             : nullptr;
}

// The target of "applications/<app>/<target>"; "" for an application
// without targets.
PyObject* get_app_target(PyObject* object, void*) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    if (!requireOpen(self)) {
        return nullptr;
    }
    canopy_str_t name = canopy_request_app_target(self->request);
    return PyUnicode_DecodeUTF8(name.data, static_cast<Py_ssize_t>(name.length), "replace");
}

// [(name, value), ...] as bytes, names in lower case (ASGI), in order.
// Built with the concrete constructors (no format string, no temporary
// string): it runs once per request.
PyObject* requestHeaders(PyObject* object, PyObject*) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    if (!requireOpen(self)) {
        return nullptr;
    }
    size_t count = canopy_request_header_count(self->request);
    PyObject* list = PyList_New(0);
    for (size_t index = 0; list != nullptr && index < count; ++index) {
        canopy_str_t name{};
        canopy_str_t value{};
        if (canopy_request_header(self->request, index, &name, &value) != CANOPY_OK) {
            continue;
        }
        PyObject* lower = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(name.length));
        PyObject* raw_value = lower == nullptr ? nullptr : bytesOf(value);
        if (raw_value == nullptr) {
            Py_XDECREF(lower);
            Py_CLEAR(list);
            break;
        }
        char* out = PyBytes_AS_STRING(lower);
        for (size_t at = 0; at < name.length; ++at) {
            out[at] = static_cast<char>(std::tolower(static_cast<unsigned char>(name.data[at])));
        }
        PyObject* pair = PyTuple_New(2);
        if (pair == nullptr) {
            Py_DECREF(lower);
            Py_DECREF(raw_value);
            Py_CLEAR(list);
            break;
        }
        PyTuple_SET_ITEM(pair, 0, lower);
        PyTuple_SET_ITEM(pair, 1, raw_value);
        if (PyList_Append(list, pair) != 0) {
            Py_DECREF(pair);
            Py_CLEAR(list);
            break;
        }
        Py_DECREF(pair);
    }
    return list;
}

// read(n): up to n body bytes; b"" at the end of the body, None when none
// is there yet (on_data follows when some arrives).
PyObject* requestRead(PyObject* object, PyObject* argument) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    Py_ssize_t capacity = PyLong_AsSsize_t(argument);
    if (capacity == -1 && PyErr_Occurred()) {
        return nullptr;
    }
    if (!requireOpen(self)) {
        return nullptr;
    }
    if (capacity <= 0) {
        capacity = 1;
    }
    PyObject* bytes = PyBytes_FromStringAndSize(nullptr, capacity);
    if (bytes == nullptr) {
        return nullptr;
    }
    size_t got = 0;
    int rc = canopy_request_read_nb(self->request, PyBytes_AS_STRING(bytes),
                                    static_cast<size_t>(capacity), &got);
    if (rc == CANOPY_AGAIN) {
        Py_DECREF(bytes);
        Py_RETURN_NONE;
    }
    if (rc != CANOPY_OK) {
        Py_DECREF(bytes);
        return raiseCode(rc, "reading the request body");
    }
    if (static_cast<Py_ssize_t>(got) != capacity &&
        _PyBytes_Resize(&bytes, static_cast<Py_ssize_t>(got)) != 0) {
        return nullptr;
    }
    return bytes;
}

// write(buffer): how many bytes were taken now; 0 when none fit (on_drain
// follows when some will).
PyObject* requestWrite(PyObject* object, PyObject* argument) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    if (!requireOpen(self)) {
        return nullptr;
    }
    Py_buffer buffer;
    if (PyObject_GetBuffer(argument, &buffer, PyBUF_SIMPLE) != 0) {
        return nullptr;
    }
    size_t written = 0;
    int rc = buffer.len == 0 ? CANOPY_OK
                             : canopy_response_write_nb(self->request, buffer.buf,
                                                        static_cast<size_t>(buffer.len), &written);
    PyBuffer_Release(&buffer);
    if (rc == CANOPY_AGAIN) {
        written = 0;
    } else if (rc != CANOPY_OK) {
        return raiseCode(rc, "writing the response");
    }
    return PyLong_FromSize_t(written);
}

// Adds (name, value) bytes pairs after canopy_response_init.
bool addHeaders(RequestObject* self, PyObject* headers) {
    PyObject* items = PySequence_Fast(headers, "headers must be a sequence");
    if (items == nullptr) {
        return false;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(items);
    for (Py_ssize_t index = 0; index < count; ++index) {
        const char* name = nullptr;
        Py_ssize_t name_length = 0;
        const char* value = nullptr;
        Py_ssize_t value_length = 0;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(items, index), "y#y#", &name, &name_length,
                              &value, &value_length)) {
            Py_DECREF(items);
            return false;
        }
        int rc = canopy_response_add_header(self->request, name, static_cast<size_t>(name_length),
                                            value, static_cast<size_t>(value_length));
        if (rc != CANOPY_OK) {
            if (rc == CANOPY_INVALID) {
                PyErr_Format(PyExc_ValueError, "invalid response header %R: %R",
                             PySequence_Fast_GET_ITEM(items, index), headers);
            } else {
                raiseCode(rc, "adding a response header");
            }
            Py_DECREF(items);
            return false;
        }
    }
    Py_DECREF(items);
    return true;
}

// start(status, headers): the response's status and header fields.
PyObject* requestStart(PyObject* object, PyObject* arguments) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    int status = 0;
    PyObject* headers = nullptr;
    if (!PyArg_ParseTuple(arguments, "iO", &status, &headers) || !requireOpen(self)) {
        return nullptr;
    }
    Py_ssize_t count = PyObject_Length(headers);
    if (count < 0) {
        return nullptr;
    }
    int rc = canopy_response_init(self->request, static_cast<uint16_t>(status),
                                  static_cast<uint32_t>(count));
    if (rc != CANOPY_OK) {
        return raiseCode(rc, "starting the response");
    }
    if (!addHeaders(self, headers)) {
        return nullptr;
    }
    Py_RETURN_NONE;
}

PyObject* requestSendHeaders(PyObject* object, PyObject*) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    if (!requireOpen(self)) {
        return nullptr;
    }
    int rc = canopy_response_send_headers(self->request);
    if (rc != CANOPY_OK) {
        return raiseCode(rc, "sending the response head");
    }
    Py_RETURN_NONE;
}

// done(ok): finishes the request (ok false aborts it). The object keeps no
// pointer to it afterwards; the SDK's reference to the object is dropped.
PyObject* requestDone(PyObject* object, PyObject* argument) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    if (self->request == nullptr) {
        Py_RETURN_NONE;
    }
    int ok = PyObject_IsTrue(argument);
    if (ok < 0) {
        return nullptr;
    }
    canopy_request_t* request = self->request;
    self->request = nullptr;
    canopy_request_set_user_data(request, nullptr);
    (void)canopy_request_done(request, ok != 0 ? CANOPY_OK : CANOPY_ERROR);
    Py_DECREF(object);  // the reference the request held (the caller holds another)
    Py_RETURN_NONE;
}

// ws_accept(headers): 101 with the extra header fields.
PyObject* requestWebSocketAccept(PyObject* object, PyObject* headers) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    if (!requireOpen(self)) {
        return nullptr;
    }
    Py_ssize_t count = PyObject_Length(headers);
    if (count < 0) {
        return nullptr;
    }
    int rc = canopy_response_init(self->request, 101, static_cast<uint32_t>(count));
    if (rc != CANOPY_OK) {
        return raiseCode(rc, "accepting the WebSocket");
    }
    if (!addHeaders(self, headers)) {
        return nullptr;
    }
    rc = canopy_websocket_accept(self->request);
    if (rc != CANOPY_OK) {
        return raiseCode(rc, "accepting the WebSocket");
    }
    Py_RETURN_NONE;
}

// ws_send(opcode, payload): one whole frame. Waits (without the GIL) only
// while the router holds as much of this connection's output as it allows.
PyObject* requestWebSocketSend(PyObject* object, PyObject* arguments) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    int opcode = 0;
    Py_buffer payload;
    if (!PyArg_ParseTuple(arguments, "iy*", &opcode, &payload)) {
        return nullptr;
    }
    if (!requireOpen(self)) {
        PyBuffer_Release(&payload);
        return nullptr;
    }
    int rc = CANOPY_OK;
    {
        GilRelease unlocked;
        rc = canopy_websocket_send(self->request, static_cast<uint8_t>(opcode), 1, payload.buf,
                                   static_cast<size_t>(payload.len));
    }
    PyBuffer_Release(&payload);
    if (rc != CANOPY_OK) {
        return raiseCode(rc, "sending a WebSocket frame");
    }
    Py_RETURN_NONE;
}

PyObject* requestSetOwner(PyObject* object, PyObject* owner) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    PyObject* previous = self->owner;
    self->owner = nullptr;
    if (owner != Py_None) {
        Py_INCREF(owner);
        self->owner = owner;
    }
    Py_XDECREF(previous);
    Py_RETURN_NONE;
}

PyMethodDef request_methods[] = {
    {"headers", requestHeaders, METH_NOARGS, nullptr},
    {"read", requestRead, METH_O, nullptr},
    {"write", requestWrite, METH_O, nullptr},
    {"start", requestStart, METH_VARARGS, nullptr},
    {"send_headers", requestSendHeaders, METH_NOARGS, nullptr},
    {"done", requestDone, METH_O, nullptr},
    {"ws_accept", requestWebSocketAccept, METH_O, nullptr},
    {"ws_send", requestWebSocketSend, METH_VARARGS, nullptr},
    {"set_owner", requestSetOwner, METH_O, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef request_getset[] = {
    {"method", get_method, nullptr, nullptr, nullptr},
    {"version", get_version, nullptr, nullptr, nullptr},
    {"remote", get_remote, nullptr, nullptr, nullptr},
    {"local_address", get_local_address, nullptr, nullptr, nullptr},
    {"local_port", get_local_port, nullptr, nullptr, nullptr},
    {"target", get_target, nullptr, nullptr, nullptr},
    {"path", get_path, nullptr, nullptr, nullptr},
    {"query", get_query, nullptr, nullptr, nullptr},
    {"tls", get_tls, nullptr, nullptr, nullptr},
    {"content_length", get_content_length, nullptr, nullptr, nullptr},
    {"websocket", get_websocket, nullptr, nullptr, nullptr},
    {"app_target", get_app_target, nullptr, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot request_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(requestDealloc)},
    {Py_tp_methods, request_methods},
    {Py_tp_getset, request_getset},
    {0, nullptr},
};

PyType_Spec request_spec = {"_canopy.Request", sizeof(RequestObject), 0, Py_TPFLAGS_DEFAULT,
                            request_slots};

// The Python object of a request, or NULL once it is done (borrowed).
RequestObject* requestObject(canopy_request_t* request) {
    return static_cast<RequestObject*>(canopy_request_user_data(request));
}

// Calls owner.<method>(*arguments) for an event on an open request.
void callOwner(canopy_request_t* request, const char* method, PyObject* arguments) {
    RequestObject* self = requestObject(request);
    if (self == nullptr || self->owner == nullptr) {
        return;
    }
    PyObject* owner = self->owner;
    Py_INCREF(owner);
    PyObject* callable = PyObject_GetAttrString(owner, method);
    PyObject* result = callable != nullptr ? PyObject_CallObject(callable, arguments) : nullptr;
    if (result == nullptr) {
        logCallbackFailure(method);
    }
    Py_XDECREF(result);
    Py_XDECREF(callable);
    Py_DECREF(owner);
}

// ---- _canopy.Context --------------------------------------------------------

struct ContextObject {
    PyObject_HEAD canopy_context_t* context;  // NULL once freed
    PyObject* handler;                        // the Worker of asgi_server.py
};

PyTypeObject* context_type = nullptr;

void contextDealloc(PyObject* object) {
    auto* self = reinterpret_cast<ContextObject*>(object);
    Py_CLEAR(self->handler);
    PyTypeObject* type = Py_TYPE(object);
    type->tp_free(object);
    Py_DECREF(type);
}

bool contextOpen(ContextObject* self) {
    if (self->context == nullptr) {
        PyErr_SetString(PyExc_RuntimeError, "the serving context is gone");
        return false;
    }
    return true;
}

// fds(): the descriptors to watch, in the order app.h documents.
PyObject* contextFds(PyObject* object, PyObject*) {
    auto* self = reinterpret_cast<ContextObject*>(object);
    if (!contextOpen(self)) {
        return nullptr;
    }
    int fds[4] = {-1, -1, -1, -1};
    size_t count = 4;
    if (int rc = canopy_context_fds(self->context, fds, &count); rc != CANOPY_OK) {
        return raiseCode(rc, "listing the context's descriptors");
    }
    return Py_BuildValue("(iiii)", fds[0], fds[1], fds[2], fds[3]);
}

// run_once(): does what is ready without waiting; the callbacks run inside.
PyObject* contextRunOnce(PyObject* object, PyObject*) {
    auto* self = reinterpret_cast<ContextObject*>(object);
    if (!contextOpen(self)) {
        return nullptr;
    }
    int rc = canopy_run_once(self->context, 0);
    return PyLong_FromLong(rc);
}

PyObject* contextSetHandler(PyObject* object, PyObject* handler) {
    auto* self = reinterpret_cast<ContextObject*>(object);
    if (!contextOpen(self)) {
        return nullptr;
    }
    if (handler == Py_None) {
        Py_CLEAR(self->handler);
        canopy_context_set_user_data(self->context, nullptr);
    } else {
        Py_INCREF(handler);
        Py_XSETREF(self->handler, handler);
        canopy_context_set_user_data(self->context, self);
    }
    Py_RETURN_NONE;
}

PyMethodDef context_methods[] = {
    {"fds", contextFds, METH_NOARGS, nullptr},
    {"run_once", contextRunOnce, METH_NOARGS, nullptr},
    {"set_handler", contextSetHandler, METH_O, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot context_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(contextDealloc)},
    {Py_tp_methods, context_methods},
    {0, nullptr},
};

PyType_Spec context_spec = {"_canopy.Context", sizeof(ContextObject), 0, Py_TPFLAGS_DEFAULT,
                            context_slots};

// Calls handler.<method>(argument) of the context's Worker.
void callHandler(canopy_context_t* context, const char* method, PyObject* argument) {
    auto* self = static_cast<ContextObject*>(canopy_context_user_data(context));
    if (self == nullptr || self->handler == nullptr) {
        return;
    }
    PyObject* result = argument != nullptr
                           ? PyObject_CallMethod(self->handler, method, "O", argument)
                           : PyObject_CallMethod(self->handler, method, nullptr);
    if (result == nullptr) {
        logCallbackFailure(method);
    }
    Py_XDECREF(result);
}

// ---- SDK callbacks (inside run_once: the GIL is held) -------------------------

extern "C" void onAsgiRequest(canopy_request_t* request) {
    auto* self = PyObject_New(RequestObject, request_type);
    if (self == nullptr) {
        logCallbackFailure("accepting a request");
        (void)canopy_request_done(request, CANOPY_ERROR);
        return;
    }
    self->request = request;
    self->owner = nullptr;
    // The request holds this reference until done().
    canopy_request_set_user_data(request, self);
    callHandler(canopy_request_context(request), "on_request", reinterpret_cast<PyObject*>(self));
    if (self->request != nullptr && self->owner == nullptr) {
        // The handler failed before a cycle took the request.
        PyObject* dropped =
            PyObject_CallMethod(reinterpret_cast<PyObject*>(self), "done", "O", Py_False);
        Py_XDECREF(dropped);
        PyErr_Clear();
    }
}

extern "C" void onAsgiData(canopy_request_t* request) {
    callOwner(request, "on_data", nullptr);
}

extern "C" void onAsgiDrain(canopy_request_t* request) {
    callOwner(request, "on_drain", nullptr);
}

extern "C" void onAsgiClose(canopy_request_t* request) {
    callOwner(request, "on_close", nullptr);
}

extern "C" void onAsgiFrame(const canopy_websocket_frame_t* frame) {
    PyObject* arguments = Py_BuildValue("(iiy#)", frame->opcode, frame->fin,
                                        reinterpret_cast<const char*>(frame->payload),
                                        static_cast<Py_ssize_t>(frame->payload_length));
    if (arguments == nullptr) {
        logCallbackFailure("receiving a WebSocket frame");
        return;
    }
    callOwner(frame->request, "on_frame", arguments);
    Py_DECREF(arguments);
}

extern "C" void onAsgiQuit(canopy_context_t* context) {
    callHandler(context, "on_quit", nullptr);
}

// ---- the module ------------------------------------------------------------------

PyObject* moduleLog(PyObject*, PyObject* arguments) {
    int level = CANOPY_LOG_INFO;
    const char* text = nullptr;
    if (!PyArg_ParseTuple(arguments, "is", &level, &text)) {
        return nullptr;
    }
    logLine(static_cast<canopy_log_level_t>(level), text);
    Py_RETURN_NONE;
}

PyMethodDef module_methods[] = {
    {"log", moduleLog, METH_VARARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT,
    "_canopy",
    nullptr,
    -1,
    module_methods,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

PyObject* createBindingModule() {
    PyObject* module = PyModule_Create(&module_definition);
    if (module == nullptr) {
        return nullptr;
    }
    request_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&request_spec));
    context_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&context_spec));
    bool ok = request_type != nullptr && context_type != nullptr &&
              PyModule_AddIntConstant(module, "OK", CANOPY_OK) == 0 &&
              PyModule_AddIntConstant(module, "ERROR", CANOPY_ERROR) == 0 &&
              PyModule_AddIntConstant(module, "AGAIN", CANOPY_AGAIN) == 0 &&
              PyModule_AddIntConstant(module, "QUIT", CANOPY_QUIT) == 0;
    if (!ok) {
        Py_DECREF(module);
        return nullptr;
    }
    return module;
}

}  // namespace

PyObject* loadAsgiServer() {
    PyObject* binding = createBindingModule();
    if (binding == nullptr) {
        return nullptr;
    }
    PyObject* modules = PyImport_GetModuleDict();  // borrowed
    int rc = PyDict_SetItemString(modules, "_canopy", binding);
    Py_DECREF(binding);
    if (rc != 0) {
        return nullptr;
    }
    PyObject* code = Py_CompileString(kAsgiServerSource, "<canopy>/asgi_server.py", Py_file_input);
    if (code == nullptr) {
        return nullptr;
    }
    PyObject* server = PyImport_ExecCodeModule("canopy_asgi", code);
    Py_DECREF(code);
    return server;
}

void setAsgiCallbacks(canopy_app_init_t& init) {
    init.request_handler = onAsgiRequest;
    init.data_handler = onAsgiData;
    init.drain_handler = onAsgiDrain;
    init.close_handler = onAsgiClose;
    init.websocket_handler = onAsgiFrame;
    init.quit_handler = onAsgiQuit;
}

PyObject* newAsgiContext(canopy_context_t* context) {
    auto* self = PyObject_New(ContextObject, context_type);
    if (self == nullptr) {
        return nullptr;
    }
    self->context = context;
    self->handler = nullptr;
    return reinterpret_cast<PyObject*>(self);
}

void detachAsgiContext(PyObject* object) {
    auto* self = reinterpret_cast<ContextObject*>(object);
    if (self->context != nullptr) {
        canopy_context_set_user_data(self->context, nullptr);
        self->context = nullptr;
    }
    Py_CLEAR(self->handler);
}

}  // namespace canopy::python
