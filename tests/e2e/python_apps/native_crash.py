"""A WSGI app whose /crash dies in native code (a NULL read through ctypes),
for tests/e2e/test_python_frameworks.py: the process manager's business."""

import ctypes
import os


def application(environ, start_response):
    if environ["PATH_INFO"] == "/crash":
        ctypes.string_at(0)  # SIGSEGV inside the interpreter
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
