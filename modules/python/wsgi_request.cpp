#include "wsgi_request.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <string_view>

#include "python_runtime.h"
#include "wsgi_objects.h"

namespace canopy::python {

namespace {

std::string_view view(canopy_str_t text) {
    return {text.data, text.length};
}

// PEP 3333: environ strings are "native strings" holding latin-1 bytes.
bool setText(PyObject* environ, const char* key, std::string_view value) {
    PyObject* text =
        PyUnicode_DecodeLatin1(value.data(), static_cast<Py_ssize_t>(value.size()), nullptr);
    if (text == nullptr) {
        return false;
    }
    int rc = PyDict_SetItemString(environ, key, text);
    Py_DECREF(text);
    return rc == 0;
}

bool equalsIgnoringCase(std::string_view left, std::string_view right) {
    return left.size() == right.size() &&
           std::equal(left.begin(), left.end(), right.begin(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) ==
                      std::tolower(static_cast<unsigned char>(b));
           });
}

bool addHeaders(PyObject* environ, canopy_request_t* request) {
    size_t count = canopy_request_header_count(request);
    bool have_type = false;
    bool have_length = false;
    for (size_t index = 0; index < count; ++index) {
        canopy_str_t name{};
        canopy_str_t value{};
        if (canopy_request_header(request, index, &name, &value) != CANOPY_OK) {
            continue;
        }
        std::string key = "HTTP_";
        for (char c : view(name)) {
            key += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        }
        std::string text(view(value));
        // Repeated fields are joined, as Unit does.
        if (PyObject* earlier = PyDict_GetItemString(environ, key.c_str())) {
            PyObject* encoded = PyUnicode_AsLatin1String(earlier);
            if (encoded == nullptr) {
                return false;
            }
            text = std::string(PyBytes_AS_STRING(encoded)) + ", " + text;
            Py_DECREF(encoded);
        }
        if (!setText(environ, key.c_str(), text)) {
            return false;
        }
        if (!have_type && equalsIgnoringCase(view(name), "Content-Type")) {
            have_type = setText(environ, "CONTENT_TYPE", view(value));
            if (!have_type) {
                return false;
            }
        } else if (!have_length && equalsIgnoringCase(view(name), "Content-Length")) {
            have_length = setText(environ, "CONTENT_LENGTH", view(value));
            if (!have_length) {
                return false;
            }
        }
    }
    return true;
}

PyObject* makeEnviron(canopy_request_t* request, const WsgiApplication& application,
                      PyObject* input) {
    PyObject* environ = PyDict_Copy(application.base_environ);
    if (environ == nullptr) {
        return nullptr;
    }
    std::string_view path = view(canopy_request_path(request));
    std::string_view script_name;
    const std::string& prefix = application.prefix;
    if (!prefix.empty() && path.substr(0, prefix.size()) == prefix &&
        (path.size() == prefix.size() || path[prefix.size()] == '/')) {
        script_name = path.substr(0, prefix.size());
        path.remove_prefix(prefix.size());
    }
    std::string port = std::to_string(canopy_request_local_port(request));
    bool ok = setText(environ, "REQUEST_METHOD", view(canopy_request_method(request))) &&
              setText(environ, "REQUEST_URI", view(canopy_request_target(request))) &&
              setText(environ, "SCRIPT_NAME", script_name) && setText(environ, "PATH_INFO", path) &&
              setText(environ, "QUERY_STRING", view(canopy_request_query(request))) &&
              setText(environ, "SERVER_PROTOCOL", view(canopy_request_version(request))) &&
              setText(environ, "REMOTE_ADDR", view(canopy_request_remote(request))) &&
              setText(environ, "SERVER_ADDR", view(canopy_request_local_address(request))) &&
              setText(environ, "SERVER_NAME", view(canopy_request_server_name(request))) &&
              setText(environ, "SERVER_PORT", port) &&
              setText(environ, "wsgi.url_scheme", canopy_request_tls(request) ? "https" : "http") &&
              addHeaders(environ, request) &&
              PyDict_SetItemString(environ, "wsgi.input", input) == 0;
    if (!ok) {
        Py_DECREF(environ);
        return nullptr;
    }
    return environ;
}

// Why a request failed: a traceback (logged as an error) or a plain line.
struct Failure {
    std::string text;
    canopy_log_level_t level = CANOPY_LOG_ERROR;
};

std::string describeRequest(canopy_request_t* request) {
    return std::string(view(canopy_request_method(request))) + " " +
           std::string(view(canopy_request_target(request)));
}

bool requireStarted(RequestState& state, Failure& failure) {
    if (state.start_response_called) {
        return true;
    }
    failure.text = "the application sent body bytes before calling start_response()";
    return false;
}

bool sendBytes(RequestState& state, PyObject* bytes, Failure& failure) {
    if (PyBytes_GET_SIZE(bytes) == 0) {
        return true;
    }
    if (!requireStarted(state, failure)) {
        return false;
    }
    int rc =
        sendBody(state, PyBytes_AS_STRING(bytes), static_cast<size_t>(PyBytes_GET_SIZE(bytes)));
    if (rc == CANOPY_OK) {
        return true;
    }
    failure.text = std::string("cannot send the response: ") + canopy_strerror(rc);
    failure.level = rc == CANOPY_CLOSED ? CANOPY_LOG_INFO : CANOPY_LOG_ERROR;
    return false;
}

// wsgi.file_wrapper around a regular file with a fileno(): the router
// sends it with sendfile(). 1: sent, 0: not such a file (iterate instead),
// -1: failed.
int sendWrappedFile(RequestState& state, PyObject* file, Failure& failure) {
    PyObject* number = PyObject_CallMethod(file, "fileno", nullptr);
    long fd = number != nullptr ? PyLong_AsLong(number) : -1;
    Py_XDECREF(number);
    struct stat status {};
    if (fd < 0 || PyErr_Occurred() || ::fstat(static_cast<int>(fd), &status) != 0 ||
        !S_ISREG(status.st_mode)) {
        PyErr_Clear();
        return 0;
    }
    // The file object's own position (it may have buffered ahead of the fd's).
    int64_t offset = -1;
    if (PyObject* position = PyObject_CallMethod(file, "tell", nullptr)) {
        offset = PyLong_AsLongLong(position);
        Py_DECREF(position);
    }
    if (offset < 0 || PyErr_Occurred()) {
        PyErr_Clear();
        offset = ::lseek(static_cast<int>(fd), 0, SEEK_CUR);
    }
    if (!requireStarted(state, failure)) {
        return -1;
    }
    uint64_t size = static_cast<uint64_t>(status.st_size);
    uint64_t start = std::min<uint64_t>(static_cast<uint64_t>(std::max<int64_t>(offset, 0)), size);
    uint64_t length = size - start;
    if (state.content_length >= 0) {
        uint64_t allowed = static_cast<uint64_t>(state.content_length);
        length = std::min(length, allowed > state.body_sent ? allowed - state.body_sent : 0);
    }
    if (length == 0) {
        return 1;
    }
    int rc = CANOPY_OK;
    {
        GilRelease unlocked;
        rc = canopy_response_send_file(state.request, static_cast<int>(fd), start, length);
    }
    if (rc != CANOPY_STATE && rc != CANOPY_INVALID) {
        state.headers_sent = true;
    }
    if (rc != CANOPY_OK) {
        state.client_gone = rc == CANOPY_CLOSED;
        failure.text = std::string("cannot send the file: ") + canopy_strerror(rc);
        failure.level = rc == CANOPY_CLOSED ? CANOPY_LOG_INFO : CANOPY_LOG_ERROR;
        return -1;
    }
    state.body_sent += length;
    return 1;
}

bool contentComplete(const RequestState& state) {
    return state.content_length >= 0 &&
           state.body_sent >= static_cast<uint64_t>(state.content_length);
}

// Sends what the application returned. False with `failure` filled when the
// request must fail.
bool sendResult(RequestState& state, PyObject* result, Failure& failure) {
    if (PyBytes_Check(result)) {
        return sendBytes(state, result, failure);
    }
    if (PyObject* file = wrappedFile(result)) {
        int sent = sendWrappedFile(state, file, failure);
        if (sent != 0) {
            return sent > 0;
        }
    }
    PyObject* iterator = PyObject_GetIter(result);
    if (iterator == nullptr) {
        failure.text = takeExceptionText();
        return false;
    }
    bool ok = true;
    while (ok && !contentComplete(state)) {
        PyObject* item = PyIter_Next(iterator);
        if (item == nullptr) {
            if (PyErr_Occurred()) {
                failure.text = takeExceptionText();
                ok = false;
            }
            break;
        }
        if (!PyBytes_Check(item)) {
            failure.text = std::string("the application's iterable yielded a ") +
                           Py_TYPE(item)->tp_name + ", but every item must be bytes";
            ok = false;
        } else {
            ok = sendBytes(state, item, failure);
        }
        Py_DECREF(item);
    }
    Py_DECREF(iterator);
    return ok;
}

// PEP 3333: close() is called whatever happened.
void closeResult(PyObject* result, const std::string& what) {
    if (!PyObject_HasAttrString(result, "close")) {
        return;
    }
    PyObject* closed = PyObject_CallMethod(result, "close", nullptr);
    if (closed == nullptr) {
        logLine(CANOPY_LOG_ERROR, what + ": the iterable's close() failed");
        logLines(CANOPY_LOG_ERROR, takeExceptionText());
    }
    Py_XDECREF(closed);
}

void finish(RequestState& state, int rc) {
    GilRelease unlocked;
    (void)canopy_request_done(state.request, rc);
}

// Logs the failure and answers 500 if nothing was sent yet, else aborts.
void fail(RequestState& state, const Failure& failure, const std::string& what) {
    logLine(
        failure.level,
        what + ": " + (failure.level == CANOPY_LOG_INFO ? failure.text : "the application failed"));
    if (failure.level != CANOPY_LOG_INFO) {
        logLines(CANOPY_LOG_ERROR, failure.text);
    }
    if (state.headers_sent || state.client_gone) {
        finish(state, CANOPY_ERROR);
        return;
    }
    static constexpr std::string_view kBody = "Internal Server Error\n";
    std::string length = std::to_string(kBody.size());
    bool ok = canopy_response_init(state.request, 500, 2) == CANOPY_OK &&
              canopy_response_add_header(state.request, "Content-Type", 12, "text/plain", 10) ==
                  CANOPY_OK &&
              canopy_response_add_header(state.request, "Content-Length", 14, length.data(),
                                         length.size()) == CANOPY_OK;
    if (ok) {
        GilRelease unlocked;
        ok = canopy_response_write(state.request, kBody.data(), kBody.size()) == CANOPY_OK;
    }
    finish(state, ok ? CANOPY_OK : CANOPY_ERROR);
}

}  // namespace

PyObject* makeBaseEnviron(bool multithread) {
    PyObject* environ = PyDict_New();
    PyObject* version = Py_BuildValue("(ii)", 1, 0);
    PyObject* errors = newErrors();
    bool ok =
        environ != nullptr && version != nullptr && errors != nullptr &&
        PyDict_SetItemString(environ, "wsgi.version", version) == 0 &&
        PyDict_SetItemString(environ, "wsgi.errors", errors) == 0 &&
        PyDict_SetItemString(environ, "wsgi.multithread", multithread ? Py_True : Py_False) == 0 &&
        PyDict_SetItemString(environ, "wsgi.multiprocess", Py_True) == 0 &&
        PyDict_SetItemString(environ, "wsgi.run_once", Py_False) == 0 &&
        PyDict_SetItemString(environ, "wsgi.input_terminated", Py_True) == 0 &&
        PyDict_SetItemString(environ, "wsgi.file_wrapper", fileWrapperType()) == 0 &&
        setText(environ, "SERVER_SOFTWARE", "Canopy");
    Py_XDECREF(version);
    Py_XDECREF(errors);
    if (!ok) {
        Py_XDECREF(environ);
        return nullptr;
    }
    return environ;
}

void serveRequest(canopy_request_t* request, const WsgiApplication& application) {
    RequestState state;
    state.request = request;
    std::string what = describeRequest(request);
    Failure failure;
    bool ok = false;

    PyObject* input = newInput(&state);
    PyObject* start_response = newStartResponse(&state);
    PyObject* environ = input != nullptr && start_response != nullptr
                            ? makeEnviron(request, application, input)
                            : nullptr;
    PyObject* result =
        environ != nullptr
            ? PyObject_CallFunctionObjArgs(application.callable, environ, start_response, nullptr)
            : nullptr;
    if (result == nullptr) {
        failure.text = takeExceptionText();
    } else {
        ok = sendResult(state, result, failure);
        closeResult(result, what);
        if (ok && !state.start_response_called) {
            failure.text = "the application returned without calling start_response()";
            ok = false;
        }
    }
    Py_XDECREF(result);
    if (input != nullptr) {
        detachInput(input);
    }
    if (start_response != nullptr) {
        detachStartResponse(start_response);
    }
    Py_XDECREF(environ);
    Py_XDECREF(input);
    Py_XDECREF(start_response);
    flushErrors();

    if (ok) {
        finish(state, CANOPY_OK);
    } else {
        fail(state, failure, what);
    }
}

}  // namespace canopy::python
