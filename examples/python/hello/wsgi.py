"""The Python hello application of `make run` (examples/config.json routes
/py and /py/* here, with "prefix": "/py"). Plain WSGI (PEP 3333).

    curl -i http://127.0.0.1:8080/py/
    curl -i 'http://127.0.0.1:8080/py/anything?name=you'
    curl --data-binary 'ping' http://127.0.0.1:8080/py/echo
"""

import sys
from urllib.parse import parse_qs


def application(environ, start_response):
    if environ["PATH_INFO"] == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    name = parse_qs(environ["QUERY_STRING"]).get("name", ["world"])[0]
    text = (f"Hello, {name}, from Python {sys.version.split()[0]} in Canopy!\n"
            f"SCRIPT_NAME={environ['SCRIPT_NAME']!r} PATH_INFO={environ['PATH_INFO']!r}\n")
    body = text.encode()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]
