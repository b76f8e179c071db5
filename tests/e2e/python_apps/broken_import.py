"""Cannot be imported: the configuration that names it must be refused."""

import canopy_no_such_dependency  # noqa: F401


def application(environ, start_response):
    start_response("200 OK", [])
    return [b"unreachable"]
