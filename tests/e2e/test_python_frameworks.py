"""The Python module (modules/python) under the real canopyd with a real
framework and a large body: a Django 3.2 project (Debian's python3-django)
with a CSRF-protected form, and 100 MiB echoed through wsgi.input at flat
memory."""

import http.client
import os
import pwd
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from canopy_daemon import Canopy

MODULES = os.environ.get("CANOPY_PYTHON_MODULES_DIR")
pytestmark = pytest.mark.skipif(
    not MODULES or not list(Path(MODULES).glob("python*.canopy.so")),
    reason="the python module was not built")

PORT = 18500
ECHO_PORT = PORT + 1
APPS = str(Path(__file__).resolve().parent / "python_apps")
ECHO_SIZE = 100 * 1024 * 1024

CONFIG = {
    "listeners": {
        f"127.0.0.1:{PORT}": {"pass": "applications/django"},
        f"127.0.0.1:{ECHO_PORT}": {"pass": "applications/echo"},
    },
    "applications": {
        "django": {"type": "python", "path": APPS, "module": "django_site.wsgi"},
        "echo": {"type": "python", "path": APPS, "module": "stream_echo"},
    },
    "settings": {"http": {"max_body_size": 2 * ECHO_SIZE}},
}


@pytest.fixture(scope="module")
def daemon():
    canopy = Canopy(modules_dir=MODULES).start()
    answer = canopy.put("/config", CONFIG)
    assert answer.status == 200, f"{answer}\n{canopy.log()}"
    yield canopy
    canopy.close()


def fetch(path, method="GET", body=None, headers=None, port=PORT, timeout=30):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_django_renders_a_template_and_checks_csrf(daemon):
    status, headers, body = fetch("/greet/")
    assert status == 200, f"{body!r}\n{daemon.log()}"
    assert headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert 'id="greeting"' not in page
    cookie = re.search(r"csrftoken=([A-Za-z0-9]+)", headers["Set-Cookie"]).group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([A-Za-z0-9]+)"', page).group(1)

    # The worker is unprivileged: Django needed to write nothing.
    if os.geteuid() == 0:
        pid = int(re.search(r'name="served-by" content="(\d+)"', page).group(1))
        uid = next(line.split()[1] for line in
                   Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("Uid:"))
        assert int(uid) == pwd.getpwnam("nobody").pw_uid

    # With the cookie and the form's token: accepted, the value rendered (escaped).
    status, _, body = fetch("/greet/", "POST",
                            f"csrfmiddlewaretoken={token}&name=Ada+%26+Bob",
                            headers={**FORM, "Cookie": f"csrftoken={cookie}"})
    assert status == 200, body
    assert '<p id="greeting">Hello, Ada &amp; Bob!</p>' in body.decode()

    # Without the token (with or without the cookie), or with a wrong one: 403.
    refused = [
        fetch("/greet/", "POST", "name=Eve", headers={**FORM, "Cookie": f"csrftoken={cookie}"}),
        fetch("/greet/", "POST", "name=Eve", headers=FORM),
        fetch("/greet/", "POST", f"csrfmiddlewaretoken={'x' * 64}&name=Eve",
              headers={**FORM, "Cookie": f"csrftoken={cookie}"}),
    ]
    for status, _, body in refused:
        assert status == 403, body
        assert b"CSRF verification failed" in body and b"Eve" not in body

    # An unknown path is Django's own 404 (DEBUG off: no technical page).
    status, _, body = fetch("/missing/")
    assert status == 404 and b"Traceback" not in body


def processes_titled(title):
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if raw.decode(errors="replace") == title and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def parent_of(pid):
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def workers(name):
    """The application processes of `name`: the children of its prototype."""
    prototypes = set(processes_titled(f'canopy: "{name}" prototype'))
    return sorted(int(entry.name) for entry in Path("/proc").iterdir()
                  if entry.name.isdigit() and parent_of(int(entry.name)) in prototypes)


def rss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def echo_large(size):
    """Sends `size` bytes with a Content-Length on a raw socket while a
    reader thread drains the (chunked) answer; returns the body bytes seen."""
    client = socket.create_connection(("127.0.0.1", ECHO_PORT))
    client.sendall(f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n"
                   "Connection: close\r\n\r\n".encode())
    block = bytes(range(256)) * 256
    result = {}

    def reader():
        received = b""
        while b"\r\n\r\n" not in received:
            data = client.recv(65536)
            if not data:
                break
            received += data
        head, _, rest = received.partition(b"\r\n\r\n")
        result["head"] = head
        # De-chunk as the bytes come, keeping only the unparsed tail.
        pending, offset, count = rest, 0, 0
        while not result.get("complete"):
            line_end = pending.find(b"\r\n", offset)
            if line_end >= 0:
                length = int(pending[offset:line_end].split(b";")[0], 16)
                if length == 0:
                    result["complete"] = True
                    break
                if len(pending) >= line_end + 2 + length + 2:
                    count += length
                    offset = line_end + 2 + length + 2
                    continue
            data = client.recv(1 << 20)
            if not data:
                break
            pending = pending[offset:] + data
            offset = 0
        result["count"] = count

    thread = threading.Thread(target=reader)
    thread.start()
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        client.sendall(piece)
        sent += len(piece)
    thread.join(timeout=120)
    client.close()
    return result


def test_100_mib_echoed_through_wsgi_input_at_flat_memory(daemon):
    # A first request starts the worker and shows it answers.
    status, _, body = fetch("/", "POST", b"ping", port=ECHO_PORT)
    assert (status, body) == (200, b"ping")
    router = daemon.child("canopy: router")
    apps = workers("echo")
    assert router and len(apps) == 1, (router, apps, daemon.children())
    app = apps[0]
    peaks = {"router": 0, "app": 0}
    done = threading.Event()

    def watch():
        while not done.is_set():
            peaks["router"] = max(peaks["router"], rss_kib(router))
            peaks["app"] = max(peaks["app"], rss_kib(app))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = echo_large(ECHO_SIZE)
    finally:
        done.set()
        watcher.join()
    assert result["head"].startswith(b"HTTP/1.1 200"), result["head"]
    assert b"transfer-encoding: chunked" in result["head"].lower(), result["head"]
    assert result.get("complete") and result["count"] == ECHO_SIZE, result
    assert 0 < peaks["router"] < 64 * 1024, peaks
    assert 0 < peaks["app"] < 64 * 1024, peaks
    # The same worker served it, and still does.
    assert workers("echo") == [app]
    assert fetch("/", "POST", b"after", port=ECHO_PORT)[2] == b"after"
