"""The ASGI application every server of bench/python_apps.py runs for the
ASGI case: `GET /` answers a greeting."""

GREETING = b"Hello, world!\n"
GREETING_HEADERS = [(b"content-type", b"text/plain"),
                    (b"content-length", str(len(GREETING)).encode())]


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": GREETING_HEADERS})
    await send({"type": "http.response.body", "body": GREETING})
