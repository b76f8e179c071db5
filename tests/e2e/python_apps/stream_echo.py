"""WSGI echo for tests/e2e/test_python_frameworks.py: reads wsgi.input in
64 KiB pieces and yields each one as it comes, so neither side of a large
body is ever held whole."""

PIECE = 64 * 1024


def application(environ, start_response):
    stream = environ["wsgi.input"]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])

    def pieces():
        while True:
            piece = stream.read(PIECE)
            if not piece:
                return
            yield piece
    return pieces()
