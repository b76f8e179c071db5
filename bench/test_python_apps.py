"""What of bench/python_apps.py can be checked without a load: its
arguments, the servers' command lines and canopyd's configuration, wrk's
Lua script and report, the CPU time and memory it reads from /proc, the
report, the applications themselves, and `--check` against canopyd (and
against each peer server that is installed; absent ones are skipped).

    /usr/bin/python3 -m pytest -q bench/test_python_apps.py

CANOPYD and CANOPY_PYTHON_MODULES_DIR name the daemon and its modules
(ctest sets them); without them the test that starts canopyd is skipped.
"""

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
import wsgiref.util
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import python_apps  # noqa: E402

SCRIPT = Path(python_apps.__file__)
sys.path.insert(0, str(python_apps.APPS))
import asgi_bench  # noqa: E402
import wsgi_bench  # noqa: E402


# ---- arguments ----------------------------------------------------------------

def test_defaults():
    arguments = python_apps.parse_arguments([])
    assert (arguments.duration, arguments.connections, arguments.rounds) == (8, 50, 3)
    assert (arguments.warmup, arguments.processes) == (1, 2)
    assert arguments.cases == ["wsgi-hello", "wsgi-echo-64k", "asgi-hello"]
    assert arguments.servers == ["canopy", "gunicorn-sync", "gunicorn-gthread", "uwsgi",
                                 "uvicorn"]
    assert arguments.canopyd == (arguments.build / "bin" / "canopyd").resolve()
    assert arguments.modules == arguments.canopyd.parent.parent / "modules"
    assert not arguments.check and not arguments.json


def test_overrides(tmp_path):
    arguments = python_apps.parse_arguments(
        ["--build", str(tmp_path), "--duration", "3", "--rounds", "5", "--connections", "10",
         "--warmup", "0", "--processes", "4", "--cases", "wsgi-echo-64k, asgi-hello",
         "--servers", "uvicorn,canopy", "--json"])
    assert arguments.canopyd == tmp_path / "bin" / "canopyd"
    assert arguments.modules == tmp_path / "modules"
    assert (arguments.duration, arguments.rounds, arguments.connections) == (3, 5, 10)
    assert (arguments.warmup, arguments.processes) == (0, 4)
    assert arguments.cases == ["wsgi-echo-64k", "asgi-hello"]
    assert arguments.servers == ["uvicorn", "canopy"]
    assert arguments.json
    elsewhere = python_apps.parse_arguments(["--canopyd", "/opt/c/bin/canopyd",
                                             "--modules", "/opt/m"])
    assert (elsewhere.canopyd, elsewhere.modules) == (Path("/opt/c/bin/canopyd"),
                                                      Path("/opt/m"))


@pytest.mark.parametrize("bad", [["--duration", "0"], ["--rounds", "x"], ["--warmup", "-1"],
                                 ["--cases", "wsgi-hello,nope"], ["--servers", ""],
                                 ["--servers", "nginx"], ["--unknown"]])
def test_bad_arguments_are_usage_errors(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        python_apps.parse_arguments(bad)
    assert exit_info.value.code == python_apps.EXIT_USAGE
    assert "usage:" in capsys.readouterr().err


def test_missing_canopyd_or_module_is_named(tmp_path):
    arguments = python_apps.parse_arguments(["--build", str(tmp_path), "--check"])
    with pytest.raises(python_apps.BenchError, match="no canopyd at .*pass --canopyd"):
        python_apps.check_prerequisites(arguments)
    arguments = python_apps.parse_arguments(
        ["--check", "--canopyd", "/bin/true", "--modules", str(tmp_path)])
    with pytest.raises(python_apps.BenchError, match="no Python module in"):
        python_apps.check_prerequisites(arguments)
    # Peers only: canopyd is not needed.
    python_apps.check_prerequisites(python_apps.parse_arguments(
        ["--build", str(tmp_path), "--check", "--servers", "uwsgi"]))


# ---- the servers' command lines and canopyd's configuration -------------------------

def test_peer_command_lines():
    apps = str(python_apps.APPS)
    sync = python_apps.SERVERS["gunicorn-sync"].command("wsgi", 8000, 2)
    assert sync == ["gunicorn", "--workers", "2", "--worker-class", "sync", "--bind",
                    "127.0.0.1:8000", "--chdir", apps, "--log-level", "warning",
                    "wsgi_bench:application"]
    gthread = python_apps.SERVERS["gunicorn-gthread"].command("wsgi", 8000, 2)
    assert gthread[:7] == ["gunicorn", "--workers", "2", "--worker-class", "gthread",
                           "--threads", "4"]
    uwsgi = python_apps.SERVERS["uwsgi"].command("wsgi", 8001, 2)
    # The HTTP parser in the workers, kept-alive connections; no --http
    # router process in front.
    assert uwsgi[uwsgi.index("--http11-socket") + 1] == "127.0.0.1:8001"
    assert "--http" not in uwsgi and "--http-socket" not in uwsgi
    assert uwsgi[uwsgi.index("--plugin") + 1] == "python3"
    assert uwsgi[uwsgi.index("--processes") + 1] == "2"
    assert uwsgi[uwsgi.index("--module") + 1] == "wsgi_bench:application"
    assert "--die-on-term" in uwsgi  # else SIGTERM reloads uWSGI
    uvicorn = python_apps.SERVERS["uvicorn"].command("asgi", 8002, 2)
    assert uvicorn[:3] == ["/usr/bin/python3", "-m", "uvicorn"]
    for option, value in (("--workers", "2"), ("--loop", "uvloop"), ("--http", "httptools"),
                          ("--port", "8002"), ("--app-dir", apps)):
        assert uvicorn[uvicorn.index(option) + 1] == value
    assert uvicorn[-1] == "asgi_bench:application"


def test_what_each_server_serves():
    servers = python_apps.SERVERS
    assert servers["canopy"].protocols == ("wsgi", "asgi")
    for name in ("gunicorn-sync", "gunicorn-gthread", "uwsgi"):
        assert servers[name].protocols == ("wsgi",)
        assert "does not serve ASGI" in servers[name].unavailable("asgi")
    assert servers["uvicorn"].protocols == ("asgi",)
    arguments = python_apps.parse_arguments(["--servers", "uvicorn,canopy,uwsgi"])
    steps = [(server.name, protocol, cases)
             for server, protocol, cases in python_apps.plan(arguments)]
    assert steps == [("uvicorn", "asgi", ["asgi-hello"]),
                     ("canopy", "wsgi", ["wsgi-hello", "wsgi-echo-64k"]),
                     ("canopy", "asgi", ["asgi-hello"]),
                     ("uwsgi", "wsgi", ["wsgi-hello", "wsgi-echo-64k"])]


def test_canopy_configuration():
    wsgi = python_apps.canopy_configuration(8080, "wsgi", 2)
    assert wsgi["listeners"] == {"127.0.0.1:8080": {"pass": "applications/bench"}}
    assert wsgi["applications"] == {"bench": {
        "type": "python 3.11", "path": str(python_apps.APPS), "module": "wsgi_bench",
        "callable": "application", "processes": 2, "threads": 1}}
    assert "settings" not in wsgi  # the router's listen threads at their default
    asgi = python_apps.canopy_configuration(8080, "asgi", 2)["applications"]["bench"]
    assert (asgi["module"], asgi["protocol"]) == ("asgi_bench", "asgi")


# ---- the applications, called directly ---------------------------------------------

def call_wsgi(method, path, body=b""):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path,
               "CONTENT_LENGTH": str(len(body)) if body else "",
               "wsgi.input": io.BytesIO(body + b"past the body")}
    wsgiref.util.setup_testing_defaults(environ)
    started = []
    chunks = wsgi_bench.application(environ, lambda status, headers: started.append(
        (status, headers)))
    return started, b"".join(chunks)


def test_the_wsgi_application():
    started, body = call_wsgi("GET", "/")
    assert body == python_apps.GREETING
    assert started == [("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "14")])]
    payload = os.urandom(python_apps.ECHO_SIZE)
    started, body = call_wsgi("POST", "/echo", payload)
    assert body == payload
    assert ("Content-Length", str(python_apps.ECHO_SIZE)) in started[0][1]


def test_the_asgi_application():
    async def exchange(scope, incoming):
        sent = []

        async def receive():
            return incoming.pop(0)

        async def send(message):
            sent.append(message)
        await asgi_bench.application(scope, receive, send)
        return sent

    lifespan = asyncio.run(exchange({"type": "lifespan"}, [
        {"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]))
    assert [m["type"] for m in lifespan] == ["lifespan.startup.complete",
                                             "lifespan.shutdown.complete"]
    sent = asyncio.run(exchange({"type": "http", "method": "GET", "path": "/"}, []))
    assert sent[0]["status"] == 200
    assert (b"content-length", b"14") in sent[0]["headers"]
    assert sent[1] == {"type": "http.response.body", "body": python_apps.GREETING}


# ---- wrk: the script it runs and its report -------------------------------------------

def test_wrk_scripts():
    hello = python_apps.wrk_script(python_apps.CASES["wsgi-hello"])
    assert hello == 'wrk.method = "GET"\nwrk.path = "/"\n'
    echo = python_apps.wrk_script(python_apps.CASES["wsgi-echo-64k"])
    assert 'wrk.method = "POST"' in echo and 'wrk.path = "/echo"' in echo
    assert 'wrk.body = string.rep("x", 65536)' in echo
    command = python_apps.wrk_command(9000, python_apps.CASES["wsgi-echo-64k"], 8, 50,
                                      Path("/tmp/echo.lua"))
    assert command == ["wrk", "-t1", "-c50", "-d8s", "--latency", "-s", "/tmp/echo.lua",
                       "http://127.0.0.1:9000/echo"]


WRK_OUTPUT = """Running 8s test @ http://127.0.0.1:8080/
  1 threads and 50 connections
  Latency Distribution
     50%  210.00us
     99%    2.50ms
  301234 requests in 8.00s, 40.00MB read
Requests/sec:  37654.25
Transfer/sec:      5.00MB
"""


def test_wrk_report_is_read():
    assert python_apps.parse_wrk(WRK_OUTPUT) == {"requests_per_second": 37654.25,
                                                 "p99_ms": 2.5}
    assert python_apps.parse_wrk_counts(WRK_OUTPUT) == {"requests": 301234,
                                                        "socket_errors": 0}
    with_errors = WRK_OUTPUT.replace(
        "Requests/sec", "  Socket errors: connect 1, read 20, write 3, timeout 4\nRequests/sec")
    assert python_apps.parse_wrk_counts(with_errors)["socket_errors"] == 28
    with pytest.raises(python_apps.BenchError, match="request count"):
        python_apps.parse_wrk_counts("unable to connect")


# ---- /proc: CPU time and memory of a process tree --------------------------------------

def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.02)


@pytest.fixture
def busy_tree():
    """A shell whose child and grandchild burn CPU, and one that sleeps."""
    script = """
(exec /usr/bin/python3 -c 'while True: pass') &
(bash -c '(exec /usr/bin/python3 -c "while True: pass") & wait') &
(exec sleep 60) &
wait
"""
    root = subprocess.Popen(["bash", "-c", script], start_new_session=True)
    try:
        yield root
    finally:
        os.killpg(root.pid, signal.SIGKILL)
        root.wait()


def test_cpu_time_of_every_process_in_the_tree(busy_tree):
    def busy_loops_started():
        titles = [title for _, title, _ in python_apps.memory_of_tree(busy_tree.pid)]
        return titles.count("/usr/bin/python3") == 2 and "sleep" in titles
    assert wait_for(busy_loops_started), python_apps.memory_of_tree(busy_tree.pid)
    tree = python_apps.process_tree(busy_tree.pid)
    assert busy_tree.pid in tree and len(tree) >= 5, tree
    assert os.getpid() not in tree
    started = time.monotonic()
    before = python_apps.cpu_snapshot(busy_tree.pid)
    assert set(before) == set(tree)
    time.sleep(1.0)
    after = python_apps.cpu_snapshot(busy_tree.pid)
    elapsed = time.monotonic() - started
    spent = python_apps.cpu_seconds_between(before, after)
    # Two busy loops: some CPU time for sure, and never more than two
    # loops can burn in the time that passed (plus a clock tick for each
    # process of the tree) — more would be a miscount.
    assert 0.05 < spent <= 2 * elapsed + len(tree) / python_apps.CLOCK_TICKS, (spent, elapsed)
    memory = python_apps.memory_of_tree(busy_tree.pid)
    assert {pid for pid, _, _ in memory} == set(tree)
    assert all(rss > 0 for _, _, rss in memory)
    assert any(title == "sleep" for _, title, _ in memory)


def test_cpu_ticks_of_a_process_that_is_gone():
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert python_apps.cpu_ticks(gone.pid) is None
    assert python_apps.cpu_ticks(os.getpid()) >= 0


def test_cpu_between_snapshots_counts_new_processes_from_zero():
    ticks = python_apps.CLOCK_TICKS
    before = {1: 10, 2: 5}
    after = {1: 10 + ticks, 2: 5 + ticks // 2, 3: ticks // 2}
    assert python_apps.cpu_seconds_between(before, after) == pytest.approx(2.0)


# ---- the report -----------------------------------------------------------------------

def result(rps, p99, rss, cpu, errors=0):
    return {"requests_per_second": rps, "p99_ms": p99, "rss_kib": rss,
            "cpu_us_per_request": cpu, "socket_errors": errors}


def test_medians_targets_and_markdown():
    arguments = python_apps.parse_arguments(["--duration", "8"])
    refused = python_apps.Unavailable("not available: canopyd refused \"protocol\": \"asgi\"",
                                      "HTTP 500: not supported yet")
    runs = {
        "wsgi-hello": {
            "canopy": [result(40000, 2.0, 60000, 30.0), result(44000, 3.0, 61000, 26.0),
                       result(42000, 2.5, 59000, 28.0)],
            "gunicorn-sync": [result(5000, 20.0, 80000, 100.0, errors=3)] * 3,
            "uwsgi": [result(21000, 3.0, 40000, 17.0)] * 3,
        },
        "wsgi-echo-64k": {
            "canopy": [result(12000, 10.0, 90000, 50.0)] * 3,
            "uwsgi": [result(12500, 4.0, 40000, 35.0)] * 3,
        },
        "asgi-hello": {"canopy": refused, "uvicorn": [result(22000, 8.0, 95000, 27.0)] * 3},
    }
    summary = python_apps.summarise(arguments, runs)
    canopy = summary["cases"]["wsgi-hello"]["canopy"]
    assert (canopy["requests_per_second"], canopy["p99_ms"]) == (42000, 2.5)
    assert (canopy["rss_kib"], canopy["cpu_us_per_request"], canopy["runs"]) == (60000, 28.0, 3)
    assert summary["cases"]["wsgi-hello"]["gunicorn-sync"]["socket_errors"] == 9
    assert summary["cases"]["asgi-hello"]["canopy"] == {
        "unavailable": refused.reason, "detail": "HTTP 500: not supported yet"}
    targets = {(t["case"], t["what"]): (t["value"], t["met"]) for t in summary["targets"]}
    assert targets == {
        ("wsgi-hello", "req/s canopy / uwsgi"): (2.0, True),
        ("wsgi-hello", "req/s canopy / gunicorn-sync"): (8.4, True),
        ("wsgi-echo-64k", "req/s canopy / uwsgi"): (0.96, False),
        ("wsgi-hello", "canopy CPU µs/request"): (28.0, True),
    }
    lines = python_apps.markdown(summary).splitlines()
    assert lines[0].startswith("wrk -t1 -c50 (kept alive), 8 s after 1 s of warm-up, "
                               "median of 3 alternating rounds; 2 processes per server.")
    assert "| WSGI hello | Canopy | 42,000 | 2.50 ms | 58.6 MiB | 28.0 |" in lines
    assert ("| WSGI hello | gunicorn sync | 5,000 (9 socket errors) | 20.00 ms | 78.1 MiB "
            "| 100.0 |") in lines
    assert ("| ASGI hello | Canopy | not available: canopyd refused \"protocol\": \"asgi\" "
            "| | | |") in lines
    assert "| req/s canopy / uwsgi | WSGI 64 KiB POST echo | 0.96 | >= 1 | no |" in lines
    assert "| canopy CPU µs/request | WSGI hello | 28 | < 40 | yes |" in lines


# ---- --check against the real servers -------------------------------------------------

def test_check_runs_canopy_s_wsgi_and_says_what_of_asgi():
    canopyd, modules = os.environ.get("CANOPYD"), os.environ.get("CANOPY_PYTHON_MODULES_DIR")
    if not canopyd or not modules:
        pytest.skip("CANOPYD and CANOPY_PYTHON_MODULES_DIR name the daemon and its "
                    "modules (ctest sets them)")
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--servers", "canopy", "--canopyd", canopyd,
         "--modules", modules], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert "Canopy: wsgi-hello on port" in out and "Canopy: wsgi-echo-64k on port" in out
    assert out.count("answers right") >= 2, out
    assert "WRONG" not in out
    for title in ("canopy: main", "canopy: controller", "canopy: router",
                  'canopy: "bench" prototype'):
        assert title in out, out
    assert out.count('canopy: "bench" application') >= 2, out
    # ASGI: served right once the module runs it, else refused by name.
    assert ("Canopy: asgi-hello on port" in out or
            'Canopy (ASGI): not available: canopyd refused "protocol": "asgi"' in out), out


@pytest.mark.parametrize("name", ["gunicorn-sync", "gunicorn-gthread", "uwsgi", "uvicorn"])
def test_check_runs_each_installed_peer(name):
    server = python_apps.SERVERS[name]
    protocol = server.protocols[0]
    missing = server.unavailable(protocol)
    if missing:
        pytest.skip(f"{server.label}: {missing}")
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--servers", name],
        capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    cases = [case for case in python_apps.CASES.values() if case.protocol == protocol]
    for case in cases:
        assert f"{server.label}: {case.name} on port" in completed.stdout, completed.stdout
    assert completed.stdout.count("answers right") == len(cases), completed.stdout
    # Master and 2 workers at least, each listed with its memory.
    assert completed.stdout.count(" KiB ") >= 3, completed.stdout
