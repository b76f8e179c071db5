"""ASGI on libcanopy: the protocol side of python3.11.canopy.so.

The module compiles this file into the interpreter as `canopy_asgi` and
drives it: `detect_protocol()` in the prototype, then in each worker a
`Process` that runs lifespan startup, serves on one asyncio loop per serving
thread and runs lifespan shutdown. The transport is `_canopy` (asgi_binding.cpp):
a `Context` per thread whose descriptors are loop readers, and a `Request`
per request whose reads and writes never block (None or 0: wait for the
`on_data` / `on_drain` call the SDK makes from `Context.run_once`).
"""

import asyncio
import inspect
import select
import traceback
from collections import deque

import _canopy

LOG_ERROR = 1
LOG_WARN = 2
LOG_NOTICE = 3
LOG_INFO = 4

READ_SIZE = 256 * 1024
# The ASGI layer's own limits on incoming WebSocket data (spec/app-api.md).
WEBSOCKET_MESSAGE_LIMIT = 1 << 20
WEBSOCKET_BUFFER_LIMIT = 10 << 20

OPCODE_CONTINUATION = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011

ERROR_BODY = b"Internal Server Error\n"


class ClientDisconnected(OSError):
    """Raised by send() once the client has gone (ASGI HTTP spec 2.4)."""


def log(level, text):
    _canopy.log(level, text)


def log_traceback(what, error):
    log(LOG_ERROR, what)
    for line in "".join(traceback.format_exception(error)).rstrip("\n").split("\n"):
        log(LOG_ERROR, line)


# ---- Protocol detection -----------------------------------------------------

def _positional_count(function):
    """How many positional arguments `function` requires, or None."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    count = 0
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
        elif parameter.kind == parameter.VAR_POSITIONAL:
            return None
    return count


def is_coroutine_application(app):
    """An ASGI 3 application: a coroutine function, or an object whose
    __call__ is one (functools.partial and bound methods included)."""
    if inspect.iscoroutinefunction(app):
        return True
    if inspect.isclass(app):
        return False
    call = getattr(type(app), "__call__", None)
    return call is not None and inspect.iscoroutinefunction(call)


def detect_protocol(app):
    """"asgi3", "asgi2" or "wsgi", as Unit decides when `protocol` is absent:
    a coroutine function is ASGI 3; a callable taking exactly one argument
    (the ASGI 2 double callable, a class taking the scope included) is
    ASGI 2; anything else is WSGI."""
    if is_coroutine_application(app):
        return "asgi3"
    if inspect.isclass(app):
        return "asgi2" if _positional_count(app) == 1 else "wsgi"
    return "asgi2" if _positional_count(app) == 1 else "wsgi"


# ---- Targets and lifespan ----------------------------------------------------

class Target:
    """One application of the process: the callable and its `prefix`."""

    def __init__(self, name, app, prefix, asgi3):
        self.name = name
        self.app = app
        self.prefix = prefix
        self.asgi3 = asgi3
        self.version = "3.0" if asgi3 else "2.0"
        self.lifespan = Lifespan(self)

    async def call(self, scope, receive, send):
        if self.asgi3:
            await self.app(scope, receive, send)
        else:
            instance = self.app(scope)
            await instance(receive, send)

    def label(self):
        return f'the target "{self.name}"' if self.name else "the application"


class Lifespan:
    """The lifespan protocol of one target in one worker process."""

    def __init__(self, target):
        self.target = target
        self.state = {}
        self.task = None
        self.supported = False
        self.phase = "startup"
        self.answer = None
        self.shutdown_asked = None
        self.error = None
        self.delivered = 0

    async def startup(self):
        """None when the application started (or does not speak lifespan),
        else why it refused to."""
        loop = asyncio.get_running_loop()
        self.answer = loop.create_future()
        self.shutdown_asked = loop.create_future()
        scope = {"type": "lifespan", "asgi": {"version": self.target.version,
                                              "spec_version": "2.0"},
                 "state": self.state}
        self.task = loop.create_task(self._run(scope))
        await asyncio.wait([self.answer, self.task], return_when=asyncio.FIRST_COMPLETED)
        if not self.answer.done():
            # Unit's rule: an application that ends or raises before
            # answering the startup does not speak lifespan.
            reason = (f": {type(self.error).__name__}: {self.error}"
                      if self.error is not None else "")
            log(LOG_INFO, f"{self.target.label()} does not support the ASGI lifespan "
                          f"protocol{reason}; serving without it")
            return None
        kind, message = self.answer.result()
        if kind == "lifespan.startup.failed":
            return message or "lifespan.startup.failed"
        self.supported = True
        return None

    async def shutdown(self):
        if not self.supported or self.task.done():
            return
        loop = asyncio.get_running_loop()
        self.phase = "shutdown"
        self.answer = loop.create_future()
        self.shutdown_asked.set_result(None)
        await asyncio.wait([self.answer, self.task], return_when=asyncio.FIRST_COMPLETED)
        if self.answer.done():
            kind, message = self.answer.result()
            if kind == "lifespan.shutdown.failed":
                log(LOG_ERROR, f"{self.target.label()}: lifespan shutdown failed: "
                               f"{message or 'no message'}")
            # One turn for the coroutine to return after its answer; what
            # is still running then is cancelled with the loop.
            await asyncio.sleep(0)

    async def _run(self, scope):
        try:
            await self.target.call(scope, self.receive, self.send)
        except Exception as error:  # the task's end is all that is awaited
            self.error = error
            if self.answer.done() or self.phase == "shutdown":
                log_traceback(f"{self.target.label()}: the lifespan coroutine failed", error)

    async def receive(self):
        self.delivered += 1
        if self.delivered == 1:
            return {"type": "lifespan.startup"}
        await self.shutdown_asked
        return {"type": "lifespan.shutdown"}

    async def send(self, message):
        kind = message["type"]
        expected = (("lifespan.startup.complete", "lifespan.startup.failed")
                    if self.phase == "startup" else
                    ("lifespan.shutdown.complete", "lifespan.shutdown.failed"))
        if kind not in expected or self.answer.done():
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r} during {self.phase}")
        text = message.get("message", "")
        self.answer.set_result((kind, str(text) if text else ""))


class Process:
    """Everything one worker process runs: its targets, the main thread's
    loop (lifespan and serving), and the serving threads."""

    def __init__(self, targets, default_target):
        self.targets = {target.name: target for target in targets}
        self.default_target = default_target
        self.main_loop = None

    def startup(self):
        """Runs each target's lifespan startup. None, or why the process
        must not serve."""
        self.main_loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.main_loop)
        for target in self.targets.values():
            failure = self.main_loop.run_until_complete(target.lifespan.startup())
            if failure is not None:
                return f"{target.label()} failed its lifespan startup: {failure}"
        return None

    def serve(self, context, main):
        """Serves `context` until the app quits. On the main thread with the
        loop lifespan ran on; on others with a loop of their own."""
        if main:
            loop = self.main_loop
        else:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
        try:
            Worker(self, context, loop).run()
        finally:
            if not main:
                _close_loop(loop)

    def shutdown(self):
        try:
            for target in reversed(list(self.targets.values())):
                self.main_loop.run_until_complete(target.lifespan.shutdown())
        finally:
            _close_loop(self.main_loop)

    def target_for(self, name):
        return self.targets.get(name, self.default_target)


def _close_loop(loop):
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


# ---- One serving thread ------------------------------------------------------

class Worker:
    """One context served by one asyncio loop: the SDK's descriptors are
    loop readers; when one is readable, Context.run_once dispatches to the
    on_* methods here and on the request cycles."""

    def __init__(self, process, context, loop):
        self.process = process
        self.context = context
        self.loop = loop
        self.quitting = False
        self.cycles = set()
        self.pump_scheduled = False

    def run(self):
        doorbell, port, queue, quit_event = self.context.fds()
        self.port = port
        self.watched = {doorbell, port, queue, quit_event}
        self.quit_fds = (queue, quit_event)
        self.context.set_handler(self)
        for fd in self.watched:
            self.loop.add_reader(fd, self.pump, fd)
        self.loop.call_soon(self.pump, None)
        try:
            self.loop.run_forever()
        finally:
            for fd in self.watched:
                self.loop.remove_reader(fd)
            self.context.set_handler(None)

    def pump(self, fd):
        self.pump_scheduled = False
        # One pass per turn of the loop: a pass takes one request at most,
        # so the tasks already running get their turn between two takes
        # (and a thread whose loop is busy leaves the queue to the others).
        code = self.context.run_once()
        if code == _canopy.OK:
            # There may be more: look again next turn (wake(), inlined: this
            # runs once per request).
            if not self.pump_scheduled:
                self.pump_scheduled = True
                self.loop.call_soon(self.pump, None)
        elif code == _canopy.QUIT:
            self.loop.stop()
        elif code == _canopy.ERROR:
            log(LOG_ERROR, "the serving loop lost its transport; this thread stops serving")
            self.loop.stop()
        elif fd == self.port and _readable(fd):
            # CANOPY_AGAIN, and libcanopy read everything the socket had:
            # still readable means the router closed it (app.h). The quit
            # this caused is under way.
            self.loop.remove_reader(fd)
            self.watched.discard(fd)

    def wake(self):
        """Looks at the context again soon (a request finished: quitting may
        complete)."""
        if not self.pump_scheduled:
            self.pump_scheduled = True
            self.loop.call_soon(self.pump, None)

    # Called by Context.run_once.
    def on_request(self, request):
        target = self.process.target_for(request.app_target)
        cycle = (WebSocketCycle if request.websocket else HttpCycle)(self, target, request)
        self.cycles.add(cycle)
        cycle.task = self.loop.create_task(cycle.run())

    def on_quit(self):
        self.quitting = True
        # Readable for good from now on: the SDK stops taking requests.
        for fd in self.quit_fds:
            if fd in self.watched:
                self.loop.remove_reader(fd)
                self.watched.discard(fd)
        for cycle in list(self.cycles):
            cycle.on_quit()

    def finished(self, cycle):
        self.cycles.discard(cycle)
        if self.quitting:
            self.wake()


def _readable(fd):
    # A look, not a wait: the timeout is zero.
    return bool(select.select([fd], [], [], 0)[0])


def _scope(worker, target, request, kind):
    path_bytes = request.path
    prefix = target.prefix
    root_path = ""
    if prefix and path_bytes.startswith(prefix) and (
            len(path_bytes) == len(prefix) or path_bytes[len(prefix):len(prefix) + 1] == b"/"):
        root_path = prefix.decode("utf-8", "replace")
    remote = request.remote
    if remote.startswith("unix:"):
        client = (remote[5:], None)
    else:
        client = (remote, 0)
    tls = request.tls
    scope = {
        "type": kind,
        "asgi": {"version": target.version, "spec_version": "2.4"},
        "http_version": request.version[5:] if request.version.startswith("HTTP/") else "1.1",
        "scheme": ("https" if tls else "http") if kind == "http" else ("wss" if tls else "ws"),
        "path": path_bytes.decode("utf-8", "replace"),
        "raw_path": request.target.split(b"?", 1)[0],
        "query_string": request.query,
        "root_path": root_path,
        "headers": request.headers(),
        "client": client,
        "server": (request.local_address, request.local_port),
        "state": dict(target.lifespan.state),
    }
    return scope


class Cycle:
    """What HTTP and WebSocket requests share: the task running the
    application, the request's end, the wait for an SDK event."""

    def __init__(self, worker, target, request):
        self.worker = worker
        self.target = target
        self.request = request
        self.task = None
        self.finished = False
        self.gone = False  # the client left (or the router aborted)
        # Futures of the tasks waiting for an SDK event. Several may wait at
        # once (a framework reads receive() in one task while another sends);
        # every event wakes them all and each looks again at what it needs.
        self.waiters = set()
        request.set_owner(self)

    async def wait_event(self):
        """Until the SDK calls on_data, on_drain, on_frame or on_close."""
        waiter = self.worker.loop.create_future()
        self.waiters.add(waiter)
        try:
            await waiter
        finally:
            self.waiters.discard(waiter)

    def signal(self):
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)

    def on_data(self):
        self.signal()

    def on_drain(self):
        self.signal()

    def on_close(self):
        self.gone = True
        self.signal()

    def on_quit(self):
        pass

    def finish(self, ok):
        if not self.finished:
            self.finished = True
            self.request.done(ok)
            self.request.set_owner(None)
            self.worker.finished(self)

    async def run(self):
        target = self.target
        try:
            if target.asgi3:
                # Awaited here rather than through Target.call: one
                # coroutine less per request.
                await target.app(self.scope, self.receive, self.send)
            else:
                await target.call(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            self.finish(False)
            raise
        except Exception as error:
            if self.gone and isinstance(error, ClientDisconnected):
                log(LOG_INFO, f"{self.describe()}: the client went away")
            else:
                log_traceback(f"{self.describe()}: the application failed", error)
            self.failed()
        else:
            self.returned()
        finally:
            if not self.finished:
                self.finish(False)

    def answer_error(self):
        try:
            self.request.start(500, [(b"content-type", b"text/plain"),
                                     (b"content-length", str(len(ERROR_BODY)).encode())])
            # 22 bytes always fit a fresh response's credit.
            ok = self.request.write(ERROR_BODY) == len(ERROR_BODY)
        except (ConnectionError, RuntimeError, ValueError):
            ok = False
        self.finish(ok)

    def describe(self):
        method = self.scope.get("method", "GET")
        return f"{method} {self.request.target.decode('latin-1')}"


# ---- HTTP ---------------------------------------------------------------------

class HttpCycle(Cycle):
    def __init__(self, worker, target, request):
        super().__init__(worker, target, request)
        self.scope = _scope(worker, target, request, "http")
        self.scope["method"] = request.method
        self.length = request.content_length
        self.received = 0
        self.body_ended = self.length == 0
        self.body_delivered = False
        self.response_status = None
        self.response_headers = None
        self.announced_length = None
        self.body_sent = 0
        self.head_sent = False
        self.complete = False
        # Made only when receive() has to wait for the end: most
        # applications never call receive() again after their body.
        self.disconnect_event = None

    def on_close(self):
        super().on_close()
        if self.disconnect_event is not None:
            self.disconnect_event.set()

    async def receive(self):
        if self.gone or self.complete:
            return {"type": "http.disconnect"}
        if self.body_ended:
            if not self.body_delivered:
                self.body_delivered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            # Nothing more to read: the next event is the client leaving.
            if self.disconnect_event is None:
                self.disconnect_event = asyncio.Event()
            await self.disconnect_event.wait()
            return {"type": "http.disconnect"}
        while True:
            try:
                data = self.request.read(READ_SIZE)
            except ConnectionError:
                self.on_close()
                return {"type": "http.disconnect"}
            if data is None:
                await self.wait_event()
                continue
            self.received += len(data)
            if not data or (self.length >= 0 and self.received >= self.length):
                self.body_ended = True
                self.body_delivered = True
            return {"type": "http.request", "body": data, "more_body": not self.body_ended}

    async def send(self, message):
        kind = message["type"]
        if self.gone:
            raise ClientDisconnected("the client has gone")
        if kind == "http.response.start":
            if self.response_status is not None:
                raise RuntimeError("http.response.start sent twice")
            status = message["status"]
            if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 999:
                raise ValueError(f"http.response.start: status {status!r} is not an integer "
                                 f"from 100 to 999")
            headers = []
            announced = None
            for header in message.get("headers", ()):
                name, value = header
                if not isinstance(name, bytes) or not isinstance(value, bytes):
                    raise TypeError(f"http.response.start: header {header!r} is not a pair "
                                    f"of bytes")
                if name.lower() == b"content-length":
                    if not value.strip().isdigit():
                        raise ValueError(f"http.response.start: Content-Length {value!r} is "
                                         f"not a number")
                    announced = int(value)
                headers.append((name, value))
            self.response_status = status
            self.response_headers = headers
            # The router frames the answer by it: more bytes would corrupt
            # the connection, fewer would leave the client waiting.
            self.announced_length = announced
        elif kind == "http.response.body":
            if self.response_status is None:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self.complete:
                raise RuntimeError("http.response.body sent after the response ended")
            body = message.get("body", b"")
            if not isinstance(body, (bytes, bytearray, memoryview)):
                raise TypeError(f"http.response.body: body must be bytes, not "
                                f"{type(body).__name__}")
            more = bool(message.get("more_body", False))
            size = body.nbytes if isinstance(body, memoryview) else len(body)
            if (self.announced_length is not None and
                    self.body_sent + size > self.announced_length):
                raise RuntimeError(f"http.response.body: more bytes than the Content-Length "
                                   f"({self.announced_length})")
            if not self.head_sent:
                self.request.start(self.response_status, self.response_headers)
                self.head_sent = True
                if more and not body:
                    self.request.send_headers()
            await self.write(body)
            self.body_sent += size
            if not more:
                if (self.announced_length is not None and self.body_sent < self.announced_length
                        and self.scope["method"] != "HEAD"
                        and self.response_status not in (204, 304)):
                    raise RuntimeError(f"http.response.body: the response ended after "
                                       f"{self.body_sent} of its Content-Length "
                                       f"({self.announced_length}) bytes")
                self.complete = True
                if self.disconnect_event is not None:
                    self.disconnect_event.set()
                self.finish(True)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} for an HTTP request")

    async def write(self, body):
        if type(body) is bytes:
            # Most bodies fit the credit at once: no view, no slice.
            try:
                written = self.request.write(body)
            except ConnectionError:
                self.on_close()
                raise ClientDisconnected("the client has gone") from None
            if written == len(body):
                return
            view = memoryview(body)
            offset = written
        else:
            view = memoryview(body).cast("B")
            offset = 0
        while offset < len(view):
            try:
                written = self.request.write(view[offset:])
            except ConnectionError:
                self.on_close()
                raise ClientDisconnected("the client has gone") from None
            if written == 0:
                await self.wait_event()
            offset += written

    def failed(self):
        if self.finished:
            return
        if self.head_sent or self.gone:
            self.finish(False)
            return
        self.answer_error()

    def returned(self):
        if self.finished:
            return
        if self.gone:
            self.finish(False)
        elif not self.head_sent:
            what = ("without starting a response" if self.response_status is None
                    else "after http.response.start without any http.response.body")
            log(LOG_ERROR, f"{self.describe()}: the application returned {what}")
            self.answer_error()
        else:
            log(LOG_ERROR, f"{self.describe()}: the application returned before the end "
                           f"of its response (more_body was never False)")
            self.finish(False)

# ---- WebSocket ------------------------------------------------------------------

class WebSocketCycle(Cycle):
    def __init__(self, worker, target, request):
        super().__init__(worker, target, request)
        self.scope = _scope(worker, target, request, "websocket")
        offered = []
        for name, value in self.scope["headers"]:
            if name == b"sec-websocket-protocol":
                offered.extend(part.strip() for part in value.decode("latin-1").split(","))
        self.scope["subprotocols"] = [part for part in offered if part]
        self.state = "connecting"  # then "accepted", then "closed"
        self.connect_delivered = False
        self.inbox = deque()
        self.buffered = 0
        self.fragments = None
        self.fragments_opcode = 0
        self.fragments_size = 0
        self.close_code = CLOSE_ABNORMAL

    # -- from the client
    def on_frame(self, opcode, fin, payload):
        if self.state == "closed":
            return
        if opcode in (OPCODE_TEXT, OPCODE_BINARY):
            self.fragments = [payload]
            self.fragments_opcode = opcode
            self.fragments_size = len(payload)
        elif opcode == OPCODE_CONTINUATION and self.fragments is not None:
            self.fragments.append(payload)
            self.fragments_size += len(payload)
        elif opcode == OPCODE_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else CLOSE_NO_STATUS
            # Answer the close with its code (RFC 6455 5.5.1), then the
            # connection is over for the application.
            self.close(code if len(payload) >= 2 else None, b"", code)
            return
        else:
            return  # ping and pong: the router answers pings
        if self.fragments_size > WEBSOCKET_MESSAGE_LIMIT:
            self.close(CLOSE_TOO_BIG, b"message too big", CLOSE_TOO_BIG)
            return
        if not fin:
            return
        data = b"".join(self.fragments)
        self.fragments = None
        if self.fragments_opcode == OPCODE_TEXT:
            try:
                message = {"type": "websocket.receive", "text": data.decode("utf-8")}
            except UnicodeDecodeError:
                self.close(CLOSE_INVALID_DATA, b"invalid UTF-8", CLOSE_INVALID_DATA)
                return
        else:
            message = {"type": "websocket.receive", "bytes": data}
        self.buffered += len(data)
        if self.buffered > WEBSOCKET_BUFFER_LIMIT:
            self.close(CLOSE_TOO_BIG, b"too much data buffered", CLOSE_TOO_BIG)
            return
        self.inbox.append((message, len(data)))
        self.signal()

    def on_close(self):
        if self.state != "closed":
            self.state = "closed"
            self.close_code = CLOSE_ABNORMAL
        super().on_close()

    def on_quit(self):
        if self.state == "accepted":
            self.close(CLOSE_GOING_AWAY, b"", CLOSE_GOING_AWAY)

    def close(self, code, reason, seen_code):
        """Sends a close frame (payload `code` and `reason`; none when code
        is None), ends the request and tells the application `seen_code`."""
        if self.state == "closed":
            return
        self.state = "closed"
        self.close_code = seen_code
        payload = b"" if code is None else code.to_bytes(2, "big") + reason
        try:
            self.request.ws_send(OPCODE_CLOSE, payload)
            ok = True
        except ConnectionError:
            ok = False
        self.gone = True
        self.finish(ok)
        self.signal()

    # -- the application's side
    async def receive(self):
        if not self.connect_delivered:
            self.connect_delivered = True
            return {"type": "websocket.connect"}
        while not self.inbox and self.state != "closed":
            await self.wait_event()
        if self.inbox:
            message, size = self.inbox.popleft()
            self.buffered -= size
            return message
        return {"type": "websocket.disconnect", "code": self.close_code}

    async def send(self, message):
        kind = message["type"]
        if self.state == "closed":
            raise ClientDisconnected("the WebSocket is closed")
        if kind == "websocket.accept":
            if self.state != "connecting":
                raise RuntimeError("websocket.accept sent twice")
            headers = []
            subprotocol = message.get("subprotocol")
            if subprotocol is not None:
                if not isinstance(subprotocol, str):
                    raise TypeError("websocket.accept: subprotocol must be a str")
                headers.append((b"Sec-WebSocket-Protocol", subprotocol.encode("latin-1")))
            for header in message.get("headers", ()):
                name, value = header
                if not isinstance(name, bytes) or not isinstance(value, bytes):
                    raise TypeError(f"websocket.accept: header {header!r} is not a pair of bytes")
                headers.append((name, value))
            self.request.ws_accept(headers)
            self.state = "accepted"
        elif kind == "websocket.send":
            if self.state != "accepted":
                raise RuntimeError("websocket.send before websocket.accept")
            data = message.get("bytes")
            text = message.get("text")
            if (data is None) == (text is None):
                raise ValueError("websocket.send needs exactly one of bytes and text")
            try:
                if text is not None:
                    self.request.ws_send(OPCODE_TEXT, text.encode("utf-8"))
                else:
                    if not isinstance(data, (bytes, bytearray, memoryview)):
                        raise TypeError(f"websocket.send: bytes must be bytes, not "
                                        f"{type(data).__name__}")
                    self.request.ws_send(OPCODE_BINARY, bytes(data))
            except ConnectionError:
                self.on_close()
                raise ClientDisconnected("the WebSocket is closed") from None
        elif kind == "websocket.close":
            code = message.get("code", CLOSE_NORMAL)
            if self.state == "connecting":
                self.refuse(403)
                return
            reason = (message.get("reason") or "").encode("utf-8")[:123]
            self.close(int(code), reason, int(code))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} for a WebSocket")

    def refuse(self, status):
        self.state = "closed"
        self.gone = True
        try:
            self.request.start(status, [(b"content-length", b"0")])
            ok = True
        except (ConnectionError, RuntimeError, ValueError):
            ok = False
        self.finish(ok)

    def failed(self):
        if self.finished:
            return
        if self.state == "connecting":
            self.state = "closed"
            self.gone = True
            self.answer_error()
        else:
            self.close(CLOSE_INTERNAL_ERROR, b"", CLOSE_INTERNAL_ERROR)

    def returned(self):
        if self.finished:
            return
        if self.state == "connecting":
            # The application left without accepting: refused (ASGI spec).
            self.refuse(403)
        else:
            self.close(CLOSE_NORMAL, b"", CLOSE_NORMAL)
