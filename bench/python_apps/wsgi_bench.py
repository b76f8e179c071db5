"""The WSGI application every server of bench/python_apps.py runs:
`GET /` answers a greeting, `POST /echo` answers the request's body."""

GREETING = b"Hello, world!\n"
GREETING_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(GREETING)))]


def application(environ, start_response):
    if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] == "/echo":
        # Read exactly the announced length: servers differ in what a read
        # past the body does, and every one of them must answer the same.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    start_response("200 OK", GREETING_HEADERS)
    return [GREETING]
