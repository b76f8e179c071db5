"""WSGI applications for tests/e2e/test_python.py, chosen by PATH_INFO.
Plain PEP 3333, no framework."""

import json
import os
import sys
import threading
import time

STRING_KEYS = ("REQUEST_METHOD", "REQUEST_URI", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING",
               "CONTENT_TYPE", "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_ADDR",
               "SERVER_PROTOCOL", "SERVER_SOFTWARE", "REMOTE_ADDR", "wsgi.url_scheme")


def describe_environ(environ):
    shown = {key: environ[key] for key in STRING_KEYS if key in environ}
    shown["headers"] = {key: value for key, value in environ.items() if key.startswith("HTTP_")}
    shown["wsgi"] = {
        "version": list(environ["wsgi.version"]),
        "multithread": environ["wsgi.multithread"],
        "multiprocess": environ["wsgi.multiprocess"],
        "run_once": environ["wsgi.run_once"],
        "input_terminated": environ["wsgi.input_terminated"],
        "input_has": [name for name in ("read", "readline", "readlines", "__iter__")
                      if hasattr(environ["wsgi.input"], name)],
        "file_wrapper": callable(environ["wsgi.file_wrapper"]),
        "errors_write": hasattr(environ["wsgi.errors"], "write"),
    }
    shown["types"] = sorted({type(environ[key]).__name__ for key in STRING_KEYS if key in environ})
    shown["pid"] = os.getpid()
    return shown


def respond_json(start_response, document, status="200 OK"):
    body = json.dumps(document).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def echo(environ, start_response):
    """Reads the body in uneven pieces and streams each piece back."""
    stream = environ["wsgi.input"]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])

    def pieces():
        while True:
            piece = stream.read(70001)
            if not piece:
                return
            yield piece
    return pieces()


def lines(environ, start_response):
    stream = environ["wsgi.input"]
    first = stream.readline()
    limited = stream.readline(3)
    rest = [line.decode() for line in stream]
    return respond_json(start_response, {"first": first.decode(), "limited": limited.decode(),
                                         "rest": rest, "after": stream.read().decode()})


def readlines(environ, start_response):
    return respond_json(start_response,
                        [line.decode() for line in environ["wsgi.input"].readlines()])


def stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    for index in range(5):
        yield f"part {index}\n".encode()
        time.sleep(0.15)


def write_callable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written, ")
    return [b"then ", b"returned"]


class Closing:
    """An iterable that records close()."""
    closed = []

    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)

    def close(self):
        Closing.closed.append(True)


def file_wrapper(environ, start_response):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wsgi_apps.py")
    size = os.path.getsize(path)
    start_response("200 OK", [("Content-Type", "text/x-python"), ("Content-Length", str(size))])
    return environ["wsgi.file_wrapper"](open(path, "rb"), 4096)


def fail(environ, start_response):
    raise ValueError("the application failed on purpose")


def str_item(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["a str, not bytes"]


def bad_headers(environ, start_response):
    start_response("200 OK", {"Content-Type": "text/plain"})
    return [b"unreachable"]


def fail_midway(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first part\n"
    time.sleep(0.2)  # let the router send the head before the abort
    raise RuntimeError("failed after the headers went out")


def closed(environ, start_response):
    return respond_json(start_response, {"closed": len(Closing.closed)})


def closing(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing([b"closing ", b"iterable"])


def errors(environ, start_response):
    environ["wsgi.errors"].write("a line for the log from wsgi.errors\n")
    environ["wsgi.errors"].flush()
    start_response("204 No Content", [])
    return []


def slow(environ, start_response):
    time.sleep(1)
    return respond_json(start_response, {"thread": threading.get_ident(), "pid": os.getpid(),
                                         "multithread": environ["wsgi.multithread"]})


FOREVER = {"closed": 0}


def forever(environ, start_response):
    """Streams until the client leaves; the generator is closed then."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    try:
        while True:
            yield b"x" * 65536
    finally:
        FOREVER["closed"] += 1


def forever_closed(environ, start_response):
    return respond_json(start_response, FOREVER)


def python_sys(environ, start_response):
    try:
        import venv_marker
        marker = venv_marker.MARKER
    except ImportError:
        marker = None
    return respond_json(start_response, {"prefix": sys.prefix, "base_prefix": sys.base_prefix,
                                         "argv": sys.argv, "marker": marker,
                                         "flags": [sys.flags.isolated, sys.flags.utf8_mode]})


ROUTES = {
    "/echo": echo, "/lines": lines, "/readlines": readlines, "/stream": stream,
    "/write": write_callable, "/file": file_wrapper, "/fail": fail, "/str": str_item,
    "/bad-headers": bad_headers, "/fail-midway": fail_midway, "/closing": closing,
    "/closed": closed, "/errors": errors, "/slow": slow, "/sys": python_sys,
    "/forever": forever, "/forever-closed": forever_closed,
}


def application(environ, start_response):
    path = environ["PATH_INFO"]
    handler = ROUTES.get(path.rsplit("/threads", 1)[-1] or path)
    if handler is not None:
        return handler(environ, start_response)
    if path.startswith("/environ") or environ.get("SCRIPT_NAME"):
        return respond_json(start_response, describe_environ(environ))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello from WSGI\n"]
