"""The second module of the targets test in tests/e2e/test_asgi.py: its own
callable and its own lifespan."""

import os


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        with open(os.environ["ASGI_EVENTS"], "a") as events:
            events.write(f"startup other {os.getpid()}\n")
        scope["state"]["name"] = "other"
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = (f"other target, root_path={scope['root_path']} path={scope['path']} "
            f"state={scope['state'].get('name')}\n").encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
