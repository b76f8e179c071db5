#include "wsgi_objects.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "python_runtime.h"

namespace canopy::python {

namespace {

// Read from the SDK at most this much at a time.
constexpr size_t kInputChunk = 64 * 1024;

PyObject* input_type = nullptr;
PyObject* start_response_type = nullptr;
PyObject* errors_type = nullptr;
PyObject* file_wrapper_type = nullptr;

struct InputObject {
    PyObject_HEAD RequestState* state;
};

struct StartResponseObject {
    PyObject_HEAD RequestState* state;
};

struct ErrorsObject {
    PyObject_HEAD
};

struct FileWrapperObject {
    PyObject_HEAD PyObject* file;
    Py_ssize_t block_size;
};

// Text written to wsgi.errors that does not end a line yet. Guarded by the GIL.
std::string errors_pending;

void deallocate(PyObject* self) {
    PyTypeObject* type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}

// ---- wsgi.input ----------------------------------------------------------

RequestState* openInput(PyObject* self) {
    RequestState* state = reinterpret_cast<InputObject*>(self)->state;
    if (state == nullptr) {
        PyErr_SetString(PyExc_ValueError, "wsgi.input is closed: its request has finished");
    }
    return state;
}

size_t available(const RequestState& state) {
    return state.input_buffer.size() - state.input_offset;
}

// Reads the next piece of the body from the SDK (GIL released while it
// waits). 1: got bytes, 0: the body ended, -1: error (exception set).
int fill(RequestState& state) {
    if (state.input_ended) {
        return 0;
    }
    if (state.input_offset > 0 && state.input_offset * 2 >= state.input_buffer.size()) {
        state.input_buffer.erase(0, state.input_offset);
        state.input_offset = 0;
    }
    size_t before = state.input_buffer.size();
    state.input_buffer.resize(before + kInputChunk);
    size_t got = 0;
    int rc = CANOPY_OK;
    {
        GilRelease unlocked;
        rc = canopy_request_read(state.request, state.input_buffer.data() + before, kInputChunk,
                                 &got);
    }
    state.input_buffer.resize(before + (rc == CANOPY_OK ? got : 0));
    if (rc != CANOPY_OK) {
        PyErr_Format(PyExc_OSError, "cannot read the request body: %s", canopy_strerror(rc));
        return -1;
    }
    if (got == 0) {
        state.input_ended = true;
        return 0;
    }
    return 1;
}

PyObject* take(RequestState& state, size_t length) {
    length = std::min(length, available(state));
    PyObject* bytes = PyBytes_FromStringAndSize(state.input_buffer.data() + state.input_offset,
                                                static_cast<Py_ssize_t>(length));
    state.input_offset += length;
    if (state.input_offset == state.input_buffer.size()) {
        state.input_buffer.clear();
        state.input_offset = 0;
    }
    return bytes;
}

// A size argument: None or negative mean "no limit" (-1).
bool sizeArgument(PyObject* args, const char* format, Py_ssize_t& size) {
    PyObject* given = Py_None;
    if (!PyArg_ParseTuple(args, format, &given)) {
        return false;
    }
    size = -1;
    if (given != Py_None) {
        size = PyNumber_AsSsize_t(given, PyExc_OverflowError);
        if (size == -1 && PyErr_Occurred()) {
            return false;
        }
    }
    return true;
}

// read(size): the bytes object is the buffer. What readline() read ahead
// goes first, then the SDK copies the body straight into it: one copy out
// of shared memory, none through input_buffer. The object grows as bytes
// come (doubling from 64 KiB), so a large `size` with a short body
// allocates no more than the body needs.
PyObject* readInto(RequestState& state, size_t size) {
    size_t capacity = std::min(size, std::max(kInputChunk, available(state)));
    PyObject* bytes = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(capacity));
    if (bytes == nullptr) {
        return nullptr;
    }
    size_t filled = std::min(size, available(state));
    std::memcpy(PyBytes_AS_STRING(bytes), state.input_buffer.data() + state.input_offset, filled);
    state.input_offset += filled;
    if (state.input_offset == state.input_buffer.size()) {
        state.input_buffer.clear();
        state.input_offset = 0;
    }
    while (filled < size && !state.input_ended) {
        if (filled == capacity) {
            capacity = std::min(size, capacity * 2);
            if (_PyBytes_Resize(&bytes, static_cast<Py_ssize_t>(capacity)) != 0) {
                return nullptr;
            }
        }
        size_t got = 0;
        int rc = CANOPY_OK;
        {
            GilRelease unlocked;
            rc = canopy_request_read(state.request, PyBytes_AS_STRING(bytes) + filled,
                                     capacity - filled, &got);
        }
        if (rc != CANOPY_OK) {
            Py_DECREF(bytes);
            PyErr_Format(PyExc_OSError, "cannot read the request body: %s", canopy_strerror(rc));
            return nullptr;
        }
        if (got == 0) {
            state.input_ended = true;
        }
        filled += got;
    }
    if (filled < capacity && _PyBytes_Resize(&bytes, static_cast<Py_ssize_t>(filled)) != 0) {
        return nullptr;
    }
    return bytes;
}

PyObject* inputRead(PyObject* self, PyObject* args) {
    RequestState* state = openInput(self);
    Py_ssize_t size = -1;
    if (state == nullptr || !sizeArgument(args, "|O:read", size)) {
        return nullptr;
    }
    if (size > 0) {
        return readInto(*state, static_cast<size_t>(size));
    }
    while (size < 0 || available(*state) < static_cast<size_t>(size)) {
        int filled = fill(*state);
        if (filled < 0) {
            return nullptr;
        }
        if (filled == 0) {
            break;
        }
    }
    return take(*state, size < 0 ? available(*state) : static_cast<size_t>(size));
}

PyObject* readLine(RequestState& state, Py_ssize_t size) {
    size_t scanned = 0;
    for (;;) {
        std::string_view pending(state.input_buffer.data() + state.input_offset, available(state));
        size_t newline = pending.find('\n', scanned);
        if (newline != std::string_view::npos) {
            size_t length = newline + 1;
            if (size >= 0) {
                length = std::min(length, static_cast<size_t>(size));
            }
            return take(state, length);
        }
        if (size >= 0 && pending.size() >= static_cast<size_t>(size)) {
            return take(state, static_cast<size_t>(size));
        }
        scanned = pending.size();
        int filled = fill(state);
        if (filled < 0) {
            return nullptr;
        }
        if (filled == 0) {
            return take(state, available(state));
        }
    }
}

PyObject* inputReadline(PyObject* self, PyObject* args) {
    RequestState* state = openInput(self);
    Py_ssize_t size = -1;
    if (state == nullptr || !sizeArgument(args, "|O:readline", size)) {
        return nullptr;
    }
    return readLine(*state, size);
}

PyObject* inputReadlines(PyObject* self, PyObject* args) {
    RequestState* state = openInput(self);
    Py_ssize_t hint = -1;
    if (state == nullptr || !sizeArgument(args, "|O:readlines", hint)) {
        return nullptr;
    }
    PyObject* lines = PyList_New(0);
    Py_ssize_t total = 0;
    while (lines != nullptr) {
        PyObject* line = readLine(*state, -1);
        if (line == nullptr) {
            Py_CLEAR(lines);
            break;
        }
        Py_ssize_t length = PyBytes_GET_SIZE(line);
        if (length == 0) {
            Py_DECREF(line);
            break;
        }
        int appended = PyList_Append(lines, line);
        Py_DECREF(line);
        if (appended != 0) {
            Py_CLEAR(lines);
            break;
        }
        total += length;
        if (hint > 0 && total >= hint) {
            break;
        }
    }
    return lines;
}

PyObject* inputIter(PyObject* self) {
    Py_INCREF(self);
    return self;
}

PyObject* inputNext(PyObject* self) {
    RequestState* state = openInput(self);
    if (state == nullptr) {
        return nullptr;
    }
    PyObject* line = readLine(*state, -1);
    if (line != nullptr && PyBytes_GET_SIZE(line) == 0) {
        Py_DECREF(line);
        return nullptr;  // StopIteration
    }
    return line;
}

PyMethodDef input_methods[] = {
    {"read", inputRead, METH_VARARGS, "read([size]) -> bytes: up to size bytes, or the rest"},
    {"readline", inputReadline, METH_VARARGS, "readline([size]) -> bytes: the next line"},
    {"readlines", inputReadlines, METH_VARARGS, "readlines([hint]) -> list of lines"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot input_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(deallocate)},
    {Py_tp_iter, reinterpret_cast<void*>(inputIter)},
    {Py_tp_iternext, reinterpret_cast<void*>(inputNext)},
    {Py_tp_methods, input_methods},
    {Py_tp_doc, const_cast<char*>("wsgi.input: the request body, streamed from canopyd")},
    {0, nullptr},
};

// ---- start_response and write --------------------------------------------

RequestState* openResponse(PyObject* self, const char* what) {
    RequestState* state = reinterpret_cast<StartResponseObject*>(self)->state;
    if (state == nullptr) {
        PyErr_Format(PyExc_RuntimeError, "%s called after its request finished", what);
    }
    return state;
}

// Text of a str (latin-1, as PEP 3333 requires) or bytes; false with an
// exception otherwise.
bool latin1Text(PyObject* object, const char* what, std::string& text) {
    if (PyBytes_Check(object)) {
        text.assign(PyBytes_AS_STRING(object), static_cast<size_t>(PyBytes_GET_SIZE(object)));
        return true;
    }
    if (!PyUnicode_Check(object)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s", what,
                     Py_TYPE(object)->tp_name);
        return false;
    }
    PyObject* encoded = PyUnicode_AsLatin1String(object);
    if (encoded == nullptr) {
        return false;
    }
    text.assign(PyBytes_AS_STRING(encoded), static_cast<size_t>(PyBytes_GET_SIZE(encoded)));
    Py_DECREF(encoded);
    return true;
}

bool equalsIgnoringCase(std::string_view left, std::string_view right) {
    return left.size() == right.size() &&
           std::equal(left.begin(), left.end(), right.begin(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) ==
                      std::tolower(static_cast<unsigned char>(b));
           });
}

PyObject* startResponseCall(PyObject* self, PyObject* args, PyObject* keywords) {
    RequestState* state = openResponse(self, "start_response()");
    if (state == nullptr) {
        return nullptr;
    }
    static const char* names[] = {"status", "headers", "exc_info", nullptr};
    PyObject* status = nullptr;
    PyObject* headers = nullptr;
    PyObject* exc_info = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, keywords, "OO|O:start_response",
                                     const_cast<char**>(names), &status, &headers, &exc_info)) {
        return nullptr;
    }
    if (exc_info != Py_None) {
        if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
            PyErr_SetString(PyExc_TypeError,
                            "exc_info must be a (type, value, traceback) tuple or None");
            return nullptr;
        }
        if (state->headers_sent) {
            // PEP 3333: too late to change the response; re-raise.
            PyObject* type = PyTuple_GET_ITEM(exc_info, 0);
            PyObject* value = PyTuple_GET_ITEM(exc_info, 1);
            PyObject* traceback = PyTuple_GET_ITEM(exc_info, 2);
            Py_INCREF(type);
            Py_INCREF(value);
            Py_INCREF(traceback);
            PyErr_Restore(type, value, traceback);
            return nullptr;
        }
    } else if (state->start_response_called) {
        PyErr_SetString(PyExc_RuntimeError,
                        "start_response() was already called (pass exc_info to replace the "
                        "status and headers after an error)");
        return nullptr;
    }

    std::string status_text;
    if (!latin1Text(status, "status", status_text)) {
        return nullptr;
    }
    bool valid = status_text.size() >= 3 &&
                 std::all_of(status_text.begin(), status_text.begin() + 3,
                             [](char c) { return c >= '0' && c <= '9'; }) &&
                 status_text[0] != '0' && (status_text.size() == 3 || status_text[3] == ' ');
    if (!valid) {
        PyErr_Format(PyExc_ValueError, "invalid status %R: expected \"NNN Reason\"", status);
        return nullptr;
    }
    auto code = static_cast<uint16_t>(std::stoi(status_text.substr(0, 3)));
    if (!PyList_Check(headers)) {
        PyErr_Format(PyExc_TypeError, "headers must be a list of (name, value) tuples, not %.100s",
                     Py_TYPE(headers)->tp_name);
        return nullptr;
    }
    Py_ssize_t count = PyList_GET_SIZE(headers);
    state->start_response_called = false;
    if (int rc = canopy_response_init(state->request, code, static_cast<uint32_t>(count));
        rc != CANOPY_OK) {
        PyErr_Format(PyExc_RuntimeError, "cannot start the response: %s", canopy_strerror(rc));
        return nullptr;
    }
    int64_t content_length = -1;
    for (Py_ssize_t index = 0; index < count; ++index) {
        PyObject* header = PyList_GET_ITEM(headers, index);
        if (!PyTuple_Check(header) || PyTuple_GET_SIZE(header) != 2 ||
            !PyUnicode_Check(PyTuple_GET_ITEM(header, 0)) ||
            !PyUnicode_Check(PyTuple_GET_ITEM(header, 1))) {
            PyErr_Format(PyExc_TypeError, "each header must be a (str, str) tuple, not %R", header);
            return nullptr;
        }
        std::string name;
        std::string value;
        if (!latin1Text(PyTuple_GET_ITEM(header, 0), "a header name", name) ||
            !latin1Text(PyTuple_GET_ITEM(header, 1), "a header value", value)) {
            return nullptr;
        }
        int rc = canopy_response_add_header(state->request, name.data(), name.size(), value.data(),
                                            value.size());
        if (rc != CANOPY_OK) {
            PyErr_Format(PyExc_ValueError, "invalid response header %R: %s", header,
                         canopy_strerror(rc));
            return nullptr;
        }
        if (equalsIgnoringCase(name, "Content-Length")) {
            char* end = nullptr;
            long long parsed = std::strtoll(value.c_str(), &end, 10);
            if (end != value.c_str() && *end == '\0' && parsed >= 0) {
                content_length = parsed;
            }
        }
    }
    state->start_response_called = true;
    state->content_length = content_length;
    return PyObject_GetAttrString(self, "write");
}

PyObject* startResponseWrite(PyObject* self, PyObject* data) {
    RequestState* state = openResponse(self, "write()");
    if (state == nullptr) {
        return nullptr;
    }
    if (!state->start_response_called) {
        PyErr_SetString(PyExc_RuntimeError, "write() called before start_response()");
        return nullptr;
    }
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "write() argument must be bytes, not %.100s",
                     Py_TYPE(data)->tp_name);
        return nullptr;
    }
    int rc = sendBody(*state, PyBytes_AS_STRING(data), static_cast<size_t>(PyBytes_GET_SIZE(data)));
    if (rc == CANOPY_CLOSED) {
        PyErr_SetString(PyExc_OSError, "the client closed the connection");
        return nullptr;
    }
    if (rc != CANOPY_OK) {
        PyErr_Format(PyExc_OSError, "cannot send the response: %s", canopy_strerror(rc));
        return nullptr;
    }
    Py_RETURN_NONE;
}

PyMethodDef start_response_methods[] = {
    {"write", startResponseWrite, METH_O, "write(data: bytes): send body bytes now"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot start_response_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(deallocate)},
    {Py_tp_call, reinterpret_cast<void*>(startResponseCall)},
    {Py_tp_methods, start_response_methods},
    {Py_tp_doc, const_cast<char*>("start_response(status, headers, exc_info=None) -> write")},
    {0, nullptr},
};

// ---- wsgi.errors ---------------------------------------------------------

void emitCompleteLines() {
    size_t start = 0;
    for (size_t newline; (newline = errors_pending.find('\n', start)) != std::string::npos;
         start = newline + 1) {
        logLine(CANOPY_LOG_ERROR, errors_pending.substr(start, newline - start));
    }
    errors_pending.erase(0, start);
}

PyObject* errorsWrite(PyObject* /*self*/, PyObject* text) {
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "write() argument must be str, not %.100s",
                     Py_TYPE(text)->tp_name);
        return nullptr;
    }
    Py_ssize_t length = 0;
    const char* utf8 = PyUnicode_AsUTF8AndSize(text, &length);
    if (utf8 == nullptr) {
        return nullptr;
    }
    errors_pending.append(utf8, static_cast<size_t>(length));
    emitCompleteLines();
    return PyLong_FromSsize_t(PyUnicode_GET_LENGTH(text));
}

PyObject* errorsWritelines(PyObject* self, PyObject* lines) {
    PyObject* iterator = PyObject_GetIter(lines);
    if (iterator == nullptr) {
        return nullptr;
    }
    while (PyObject* line = PyIter_Next(iterator)) {
        PyObject* written = errorsWrite(self, line);
        Py_DECREF(line);
        if (written == nullptr) {
            Py_DECREF(iterator);
            return nullptr;
        }
        Py_DECREF(written);
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred()) {
        return nullptr;
    }
    Py_RETURN_NONE;
}

PyObject* errorsFlush(PyObject* /*self*/, PyObject* /*unused*/) {
    flushErrors();
    Py_RETURN_NONE;
}

PyMethodDef errors_methods[] = {
    {"write", errorsWrite, METH_O, "write(text): to the Canopy log, line by line"},
    {"writelines", errorsWritelines, METH_O, "writelines(lines)"},
    {"flush", errorsFlush, METH_NOARGS, "flush(): log a pending partial line"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot errors_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(deallocate)},
    {Py_tp_methods, errors_methods},
    {Py_tp_doc, const_cast<char*>("wsgi.errors: writes lines to the Canopy log")},
    {0, nullptr},
};

// ---- wsgi.file_wrapper ---------------------------------------------------

PyObject* fileWrapperNew(PyTypeObject* type, PyObject* args, PyObject* keywords) {
    static const char* names[] = {"filelike", "blksize", nullptr};
    PyObject* file = nullptr;
    Py_ssize_t block_size = 8192;
    if (!PyArg_ParseTupleAndKeywords(args, keywords, "O|n:file_wrapper", const_cast<char**>(names),
                                     &file, &block_size)) {
        return nullptr;
    }
    auto* wrapper = reinterpret_cast<FileWrapperObject*>(type->tp_alloc(type, 0));
    if (wrapper == nullptr) {
        return nullptr;
    }
    Py_INCREF(file);
    wrapper->file = file;
    wrapper->block_size = block_size > 0 ? block_size : 8192;
    return reinterpret_cast<PyObject*>(wrapper);
}

void fileWrapperDeallocate(PyObject* self) {
    Py_CLEAR(reinterpret_cast<FileWrapperObject*>(self)->file);
    deallocate(self);
}

PyObject* fileWrapperNext(PyObject* self) {
    auto* wrapper = reinterpret_cast<FileWrapperObject*>(self);
    PyObject* data = PyObject_CallMethod(wrapper->file, "read", "n", wrapper->block_size);
    if (data != nullptr && PyObject_Length(data) == 0) {
        Py_DECREF(data);
        return nullptr;  // StopIteration
    }
    return data;
}

PyObject* fileWrapperClose(PyObject* self, PyObject* /*unused*/) {
    auto* wrapper = reinterpret_cast<FileWrapperObject*>(self);
    if (PyObject_HasAttrString(wrapper->file, "close")) {
        return PyObject_CallMethod(wrapper->file, "close", nullptr);
    }
    Py_RETURN_NONE;
}

PyMethodDef file_wrapper_methods[] = {
    {"close", fileWrapperClose, METH_NOARGS, "close(): closes the wrapped file"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot file_wrapper_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(fileWrapperNew)},
    {Py_tp_dealloc, reinterpret_cast<void*>(fileWrapperDeallocate)},
    {Py_tp_iter, reinterpret_cast<void*>(inputIter)},
    {Py_tp_iternext, reinterpret_cast<void*>(fileWrapperNext)},
    {Py_tp_methods, file_wrapper_methods},
    {Py_tp_doc, const_cast<char*>("wsgi.file_wrapper(filelike, blksize=8192): sent with "
                                  "sendfile() by canopyd when the file has a fileno()")},
    {0, nullptr},
};

PyObject* makeType(const char* name, int basic_size, PyType_Slot* slots) {
    PyType_Spec spec = {name, basic_size, 0, Py_TPFLAGS_DEFAULT, slots};
    return PyType_FromSpec(&spec);
}

PyObject* newWithState(PyObject* type, RequestState* state) {
    auto* object = PyObject_New(InputObject, reinterpret_cast<PyTypeObject*>(type));
    if (object != nullptr) {
        object->state = state;
    }
    return reinterpret_cast<PyObject*>(object);
}

}  // namespace

bool createWsgiTypes() {
    input_type = makeType("canopy.WsgiInput", sizeof(InputObject), input_slots);
    start_response_type =
        makeType("canopy.StartResponse", sizeof(StartResponseObject), start_response_slots);
    errors_type = makeType("canopy.WsgiErrors", sizeof(ErrorsObject), errors_slots);
    file_wrapper_type =
        makeType("canopy.FileWrapper", sizeof(FileWrapperObject), file_wrapper_slots);
    return input_type != nullptr && start_response_type != nullptr && errors_type != nullptr &&
           file_wrapper_type != nullptr;
}

PyObject* newInput(RequestState* state) {
    return newWithState(input_type, state);
}

PyObject* newStartResponse(RequestState* state) {
    // StartResponseObject has InputObject's layout.
    return newWithState(start_response_type, state);
}

PyObject* newErrors() {
    return reinterpret_cast<PyObject*>(
        PyObject_New(ErrorsObject, reinterpret_cast<PyTypeObject*>(errors_type)));
}

PyObject* fileWrapperType() {
    return file_wrapper_type;
}

void detachInput(PyObject* input) {
    reinterpret_cast<InputObject*>(input)->state = nullptr;
}

void detachStartResponse(PyObject* start_response) {
    reinterpret_cast<StartResponseObject*>(start_response)->state = nullptr;
}

PyObject* wrappedFile(PyObject* object) {
    if (Py_TYPE(object) != reinterpret_cast<PyTypeObject*>(file_wrapper_type)) {
        return nullptr;
    }
    return reinterpret_cast<FileWrapperObject*>(object)->file;
}

int sendBody(RequestState& state, const char* data, size_t length) {
    if (state.content_length >= 0) {
        uint64_t allowed = static_cast<uint64_t>(state.content_length);
        length = static_cast<size_t>(
            std::min<uint64_t>(length, allowed > state.body_sent ? allowed - state.body_sent : 0));
    }
    if (length == 0) {
        return CANOPY_OK;
    }
    int rc = CANOPY_OK;
    {
        GilRelease unlocked;
        rc = canopy_response_write(state.request, data, length);
    }
    if (rc != CANOPY_STATE && rc != CANOPY_INVALID) {
        state.headers_sent = true;
    }
    if (rc == CANOPY_OK) {
        state.body_sent += length;
    } else if (rc == CANOPY_CLOSED) {
        state.client_gone = true;
    }
    return rc;
}

void flushErrors() {
    emitCompleteLines();
    if (!errors_pending.empty()) {
        logLine(CANOPY_LOG_ERROR, errors_pending);
        errors_pending.clear();
    }
}

}  // namespace canopy::python
