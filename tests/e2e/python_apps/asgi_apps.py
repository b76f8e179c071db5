"""ASGI applications for tests/e2e/test_asgi.py. What the tests cannot see
in an answer (lifespan, a client that left) the apps append as lines to the
file named by the environment variable ASGI_EVENTS."""

import asyncio
import json
import os
import threading
import time


def record(line):
    with open(os.environ["ASGI_EVENTS"], "a") as events:
        events.write(line + "\n")


async def answer(send, body, status=200, content_type=b"text/plain"):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def lifespan(scope, receive, send):
    message = await receive()
    assert message["type"] == "lifespan.startup"
    scope["state"]["started_by"] = os.getpid()
    record(f"startup {os.getpid()}")
    await send({"type": "lifespan.startup.complete"})
    message = await receive()
    assert message["type"] == "lifespan.shutdown"
    record(f"shutdown {os.getpid()}")
    await send({"type": "lifespan.shutdown.complete"})


async def describe_scope(scope, receive, send):
    shown = {key: value for key, value in scope.items() if key not in ("headers", "raw_path",
                                                                        "query_string")}
    shown["raw_path"] = scope["raw_path"].decode("latin-1")
    shown["query_string"] = scope["query_string"].decode("latin-1")
    shown["headers"] = [[name.decode("latin-1"), value.decode("latin-1")]
                        for name, value in scope["headers"]]
    shown["loop_running"] = asyncio.get_running_loop().is_running()
    await answer(send, json.dumps(shown).encode(), content_type=b"application/json")


async def upload_pieces(scope, receive, send):
    """Answers the body's messages as received: [[size, more_body], ...]."""
    pieces = []
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        pieces.append([len(message["body"]), message["more_body"]])
        if not message["more_body"]:
            break
    await answer(send, json.dumps(pieces).encode(), content_type=b"application/json")


async def echo(scope, receive, send):
    """Streams the body back as it comes, one response piece per message."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")]})
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        if message["body"] or not message["more_body"]:
            await send({"type": "http.response.body", "body": message["body"],
                        "more_body": message["more_body"]})
        if not message["more_body"]:
            return


async def duplex(scope, receive, send):
    """Reads the body in one task while another sends as many bytes back:
    both may wait for the SDK at the same time."""
    size = int(scope["query_string"])
    read = 0

    async def reader():
        nonlocal read
        while True:
            message = await receive()
            read += len(message.get("body", b""))
            if not message.get("more_body"):
                return

    reading = asyncio.ensure_future(reader())
    await send({"type": "http.response.start", "status": 200, "headers": []})
    block = b"d" * 65536
    for _ in range(size // len(block)):
        await send({"type": "http.response.body", "body": block, "more_body": True})
    await reading
    await send({"type": "http.response.body", "body": f"read {read}\n".encode()})


async def stream(scope, receive, send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"x-streamed", b"yes")]})
    for index in range(5):
        await send({"type": "http.response.body", "body": f"piece {index}\n".encode(),
                    "more_body": True})
        await asyncio.sleep(0.01)
    await send({"type": "http.response.body", "body": b"end\n"})


async def endless(scope, receive, send):
    """Ticks until the client leaves; records the http.disconnect it sees."""
    tag = scope["query_string"].decode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})

    async def ticker():
        try:
            while True:
                await send({"type": "http.response.body", "body": b"tick\n" * 100,
                            "more_body": True})
                await asyncio.sleep(0.02)
        except OSError:
            pass  # the client left: send() says so once receive() has

    ticking = asyncio.ensure_future(ticker())
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            record(f"disconnect {tag}")
            break
    ticking.cancel()


async def long_poll(scope, receive, send):
    """Sends nothing: waits for the client to leave (the router notices)."""
    tag = scope["query_string"].decode()
    message = await receive()
    assert message == {"type": "http.request", "body": b"", "more_body": False}, message
    record(f"waiting {tag}")
    message = await receive()
    record(f"{message['type']} {tag}")


async def slow(scope, receive, send):
    await asyncio.sleep(0.3)
    await answer(send, b"slow answer\n")


async def fail(scope, receive, send):
    raise RuntimeError("the application broke on purpose")


async def not_bytes(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": "a str is not bytes"})


async def wrong_order(scope, receive, send):
    await send({"type": "http.response.body", "body": b"no start first"})


async def longer_than_announced(scope, receive, send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"ten bytes!"})


async def shorter_than_announced(scope, receive, send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"10")]})
    await send({"type": "http.response.body", "body": b"three", "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def blocking_thread(scope, receive, send):
    # Blocks this thread's loop on purpose: the other threads serve meanwhile.
    time.sleep(0.4)
    await answer(send, str(threading.get_ident()).encode())


async def websocket_echo(scope, receive, send):
    message = await receive()
    assert message["type"] == "websocket.connect"
    chosen = "chat.v2" if "chat.v2" in scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": chosen,
                "headers": [(b"x-accepted-by", b"canopy-test")]})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            record(f"ws-disconnect {message['code']}")
            return
        if message.get("text") == "close please":
            await send({"type": "websocket.close", "code": 4001, "reason": "asked to"})
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo: " + message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"][::-1]})


async def websocket_refuse(scope, receive, send):
    await receive()
    await send({"type": "websocket.close"})


ROUTES = {
    "/scope": describe_scope,
    "/upload-pieces": upload_pieces,
    "/echo": echo,
    "/duplex": duplex,
    "/stream": stream,
    "/endless": endless,
    "/long-poll": long_poll,
    "/slow": slow,
    "/error": fail,
    "/not-bytes": not_bytes,
    "/wrong-order": wrong_order,
    "/longer": longer_than_announced,
    "/shorter": shorter_than_announced,
    "/thread": blocking_thread,
    "/ws": websocket_echo,
    "/ws-refuse": websocket_refuse,
}


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    handler = ROUTES.get(path)
    if handler is not None:
        await handler(scope, receive, send)
    elif scope["type"] == "http":
        await answer(send, b"Hello from ASGI\n")


async def failing_startup(scope, receive, send):
    """Refuses to start: the configuration that starts it must fail."""
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "the database is unreachable"})


class Legacy:
    """ASGI 2: instantiated with the scope, then awaited with the channels."""

    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        if self.scope["type"] != "http":
            return
        await answer(send, f"ASGI {self.scope['asgi']['version']} double callable\n".encode())


def make_application():
    """A factory: called once with no arguments, its result is served."""
    async def made(scope, receive, send):
        if scope["type"] == "http":
            await answer(send, b"made by the ASGI factory\n")
        elif scope["type"] == "lifespan":
            # Not a lifespan app: end before answering (allowed, logged).
            return
    return made


def make_wsgi():
    def made(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"made by the WSGI factory\n"]
    return made
