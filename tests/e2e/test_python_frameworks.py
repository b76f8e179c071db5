"""The Python module (modules/python) under the real canopyd with a real
framework and a large body: a Django 3.2 project (Debian's python3-django)
with a CSRF-protected form and static files collected by collectstatic and
served by `share`, and 100 MiB echoed through wsgi.input at flat memory."""

import http.client
import os
import pwd
import re
import subprocess
from pathlib import Path

import pytest

from canopy_daemon import Canopy, PeakRss, application_processes, stream_through, wait_until

MODULES = os.environ.get("CANOPY_PYTHON_MODULES_DIR")
pytestmark = pytest.mark.skipif(
    not MODULES or not list(Path(MODULES).glob("python*.canopy.so")),
    reason="the python module was not built")

PORT = 18500
ECHO_PORT = PORT + 1
CRASH_PORT = PORT + 2
APPS = str(Path(__file__).resolve().parent / "python_apps")
ECHO_SIZE = 100 * 1024 * 1024



def config(static_root):
    django_environment = {"CANOPY_DJANGO_STATIC_ROOT": str(static_root)}
    return {
        "listeners": {
            f"127.0.0.1:{PORT}": {"pass": "routes/django"},
            f"127.0.0.1:{ECHO_PORT}": {"pass": "applications/echo"},
            f"127.0.0.1:{CRASH_PORT}": {"pass": "applications/crash"},
        },
        "routes": {"django": [
            # collectstatic's output holds "static/…": $uri maps onto it.
            {"match": {"uri": "/static/*"},
             "action": {"share": f"{static_root.parent}$uri"}},
            {"action": {"pass": "applications/django"}},
        ]},
        "applications": {
            "django": {"type": "python", "path": APPS, "module": "django_site.wsgi",
                       "environment": django_environment},
            "echo": {"type": "python", "path": APPS, "module": "stream_echo"},
            "crash": {"type": "python", "path": APPS, "module": "native_crash"},
        },
        "settings": {"http": {"max_body_size": 2 * ECHO_SIZE}},
    }


def collect_static(static_root):
    environment = {**os.environ, "PYTHONPATH": APPS,
                   "DJANGO_SETTINGS_MODULE": "django_site.settings",
                   "CANOPY_DJANGO_STATIC_ROOT": str(static_root)}
    subprocess.run(["/usr/bin/python3", "-m", "django", "collectstatic", "--noinput"],
                   env=environment, check=True, capture_output=True, timeout=120)
    for path in [static_root, *static_root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the router runs as nobody


@pytest.fixture(scope="module")
def daemon():
    canopy = Canopy(modules_dir=MODULES)
    static_root = canopy.dir / "site" / "static"
    static_root.parent.mkdir(mode=0o755)
    collect_static(static_root)
    canopy.start()
    answer = canopy.put("/config", config(static_root))
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


def test_django_static_files_come_from_collectstatic_through_share(daemon):
    _, _, body = fetch("/greet/")
    stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)">', body.decode()).group(1)
    assert stylesheet == "/static/greet.css"
    status, headers, body = fetch(stylesheet)
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/css")
    assert body == (Path(APPS) / "django_site" / "static" / "greet.css").read_bytes()
    assert headers["ETag"]
    # Served by the router: the application never saw it.
    assert fetch("/static/missing.css")[0] == 404
    status, _, body = fetch("/static/../django_site/settings.py")
    assert status in (400, 404) and b"SECRET_KEY" not in body


def test_100_mib_echoed_through_wsgi_input_at_flat_memory(daemon):
    # A first request starts the worker and shows it answers.
    status, _, body = fetch("/", "POST", b"ping", port=ECHO_PORT)
    assert (status, body) == (200, b"ping")
    router = daemon.child("canopy: router")
    apps = application_processes("echo")
    assert router and len(apps) == 1, (router, apps, daemon.children())
    app = apps[0]
    with PeakRss(router=router, app=app) as peaks:
        result = stream_through(ECHO_PORT, "/", ECHO_SIZE)
    assert result["head"].startswith(b"HTTP/1.1 200"), result["head"]
    assert b"transfer-encoding: chunked" in result["head"].lower(), result["head"]
    assert result.get("complete") and result["count"] == ECHO_SIZE, result
    assert 0 < peaks["router"] < 64 * 1024, peaks
    assert 0 < peaks["app"] < 64 * 1024, peaks
    # The same worker served it, and still does.
    assert application_processes("echo") == [app]
    assert fetch("/", "POST", b"after", port=ECHO_PORT)[2] == b"after"


def test_a_crash_in_native_code_is_a_502_and_a_new_process(daemon):
    status, _, body = fetch("/", port=CRASH_PORT)
    assert status == 200
    first = int(body)
    status, _, _ = fetch("/crash", port=CRASH_PORT)
    assert status == 502
    # The router answers before main has logged the exit it reaped.
    assert wait_until(lambda: "SIGSEGV" in daemon.log() or "signal 11" in daemon.log()), \
        daemon.log()[-2000:]
    # A replacement serves the next requests; the daemon and its other apps carry on.
    status, _, body = fetch("/", port=CRASH_PORT)
    assert status == 200 and int(body) != first
    assert fetch("/", "POST", b"still here", port=ECHO_PORT)[2] == b"still here"
