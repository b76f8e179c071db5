"""The ASGI hello application of `make run` (examples/config.json routes
/asgi and /asgi/* here, with "prefix": "/asgi"). Plain ASGI 3, no framework:
a greeting, a streamed count, and a WebSocket echo.

    curl -i http://127.0.0.1:8080/asgi/
    curl -N http://127.0.0.1:8080/asgi/count
    python3 -m websockets ws://127.0.0.1:8080/asgi/echo
"""

import asyncio
import sys


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    path = scope["path"][len(scope["root_path"]):] or "/"
    if scope["type"] == "websocket":
        await echo(receive, send)
    elif path == "/count":
        await count(send)
    else:
        body = (f"Hello from ASGI on Python {sys.version.split()[0]} in Canopy!\n"
                f"root_path={scope['root_path']!r} path={scope['path']!r}\n").encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


async def count(send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    for number in range(1, 6):
        await send({"type": "http.response.body", "body": f"{number}\n".encode(),
                    "more_body": True})
        await asyncio.sleep(0.5)
    await send({"type": "http.response.body", "body": b"done\n"})


async def echo(receive, send):
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text"),
                    "bytes": message.get("bytes")})
