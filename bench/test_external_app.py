"""What of bench/external_app.py can be checked without a load: its
arguments, its reading of /proc against running processes, its report, and
how it starts canopyd with the app (or says why it cannot).

    /usr/bin/python3 -m pytest -q bench/test_external_app.py

CANOPYD and CANOPY_HELLO_CPP name the binaries (ctest sets them); without
them the tests that need a daemon are skipped.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import external_app  # noqa: E402

SCRIPT = Path(external_app.__file__)


# ---- arguments ----------------------------------------------------------------

def test_defaults_match_return_200():
    arguments = external_app.parse_arguments([])
    assert (arguments.duration, arguments.connections, arguments.rounds) == (10, 50, 3)
    assert (arguments.processes, arguments.threads) == (2, 1)
    assert arguments.canopyd == (arguments.build / "bin" / "canopyd").resolve()
    assert arguments.app.name == "canopy-hello-cpp"
    assert arguments.app.parent.parts[-2:] == ("examples", "external-cpp")
    assert not arguments.check and not arguments.json and not arguments.no_nginx


def test_build_folder_and_overrides(tmp_path):
    arguments = external_app.parse_arguments(["--build", str(tmp_path)])
    assert arguments.canopyd == tmp_path / "bin" / "canopyd"
    assert arguments.app == tmp_path / "examples" / "external-cpp" / "canopy-hello-cpp"
    assert arguments.modules == tmp_path / "modules"
    elsewhere = external_app.parse_arguments(["--canopyd", str(tmp_path / "b" / "bin" / "canopyd")])
    assert elsewhere.modules == tmp_path / "b" / "modules"
    arguments = external_app.parse_arguments(
        ["--build", str(tmp_path), "--canopyd", "/opt/canopyd", "--app", "/opt/hello",
         "--duration", "8", "--connections", "100", "--rounds", "5", "--processes", "4",
         "--threads", "2", "--json", "--no-nginx"])
    assert (arguments.canopyd, arguments.app) == (Path("/opt/canopyd"), Path("/opt/hello"))
    assert (arguments.duration, arguments.connections, arguments.rounds) == (8, 100, 5)
    assert (arguments.processes, arguments.threads) == (4, 2)
    assert arguments.json and arguments.no_nginx


@pytest.mark.parametrize("bad", [["--duration", "0"], ["--processes", "-1"],
                                 ["--rounds", "x"], ["--threads", "0"], ["--unknown"]])
def test_bad_arguments_are_usage_errors(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        external_app.parse_arguments(bad)
    assert exit_info.value.code == external_app.EXIT_USAGE
    assert "usage:" in capsys.readouterr().err


def test_missing_binaries_are_named(tmp_path):
    arguments = external_app.parse_arguments(["--build", str(tmp_path), "--check"])
    with pytest.raises(external_app.BenchError, match="no canopyd at .*pass --canopyd"):
        external_app.check_prerequisites(arguments)
    arguments = external_app.parse_arguments(
        ["--build", str(tmp_path), "--check", "--canopyd", "/bin/true"])
    with pytest.raises(external_app.BenchError, match="no canopy-hello-cpp at"):
        external_app.check_prerequisites(arguments)


def test_the_configuration_canopyd_gets():
    config = external_app.configuration(8080, Path("/x/canopy-hello-cpp"), 2, 1)
    assert config["listeners"] == {"127.0.0.1:8080": {"pass": "applications/hello-cpp"}}
    assert config["applications"] == {"hello-cpp": {
        "type": "external", "executable": "/x/canopy-hello-cpp", "processes": 2}}
    threaded = external_app.configuration(8080, Path("/x/a"), 2, 4)
    assert threaded["applications"]["hello-cpp"]["arguments"] == ["--threads", "4"]
    assert threaded["applications"]["hello-cpp"]["threads"] == 4


# ---- /proc against running processes ------------------------------------------

def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.02)


@pytest.fixture
def fake_daemon():
    """A process tree shaped like canopyd's: a main titled `canopy: main
    v... [...]`, a controller and a router, a prototype, and under it two
    processes of an "application" program (tail)."""
    script = """
(exec -a 'canopy: controller' sleep 60) &
(exec -a 'canopy: router' sleep 60) &
(exec -a 'canopy: prototype hello-cpp' bash -c '
    (exec tail -f /dev/null) & (exec tail -f /dev/null) & wait') &
wait
"""
    main = subprocess.Popen(["canopy: main v0.1.0 [canopyd --no-daemon]", "-c", script],
                            executable="/bin/bash", start_new_session=True)
    try:
        yield main
    finally:
        os.killpg(main.pid, signal.SIGKILL)
        main.wait()


def test_every_process_of_the_tree_with_its_role_and_memory(fake_daemon):
    tail = Path("/usr/bin/tail").resolve()

    def complete():
        found = external_app.canopy_processes(fake_daemon.pid, tail)
        roles = [process["role"] for process in found]
        return found if roles.count("application") == 2 and len(found) == 6 else None
    found = wait_for(complete)
    assert found, external_app.canopy_processes(fake_daemon.pid, tail)
    assert [process["role"] for process in found] == [
        "main", "controller", "router", "application", "application", "prototype hello-cpp"]
    assert found[0]["pid"] == fake_daemon.pid
    assert found[0]["title"] == "canopy: main v0.1.0 [canopyd --no-daemon]"
    prototype = found[-1]
    assert all(process["ppid"] == prototype["pid"] for process in found[3:5])
    for process in found:
        assert process["rss_kib"] > 0, process
        assert process["pss_kib"] is None or process["pss_kib"] > 0, process
    names = external_app.memory_by_name(found)
    assert list(names) == ["main", "controller", "router", "application #1", "application #2",
                           "prototype hello-cpp"]


def test_processes_outside_the_tree_are_not_counted(fake_daemon):
    outsider = subprocess.Popen(["canopy: router", "60"], executable="/bin/sleep")
    try:
        found = wait_for(lambda: len(external_app.canopy_processes(fake_daemon.pid)) == 6)
        assert found
        pids = [process["pid"] for process in external_app.canopy_processes(fake_daemon.pid)]
        assert outsider.pid not in pids
        assert os.getpid() not in pids
    finally:
        outsider.kill()
        outsider.wait()


def test_role_of_titles():
    assert external_app.role_of("canopy: main v0.1.0 [x]", "/bin/canopyd", None) == "main"
    assert external_app.role_of("canopy: router", "/bin/canopyd", None) == "router"
    assert external_app.role_of("/x/canopy-hello-cpp", "/x/canopy-hello-cpp",
                                "/x/canopy-hello-cpp") == "application"
    assert external_app.role_of("canopy: app", "/x/hello", "/x/hello") == "application"
    assert external_app.role_of("/usr/bin/sh", "/usr/bin/dash", "/x/hello") == "other: sh"


# ---- wrk's output and the report ----------------------------------------------

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8080/
  1 threads and 50 connections
  Latency Distribution
     50%  210.00us
     75%  250.00us
     90%  300.00us
     99%  512.00us
  1234567 requests in 10.00s, 100.00MB read
Requests/sec: 123456.78
Transfer/sec:     10.00MB
"""


def test_wrk_output_is_read():
    assert external_app.parse_wrk(WRK_OUTPUT) == {"requests_per_second": 123456.78,
                                                  "p99_ms": 0.512}
    assert external_app.parse_wrk(WRK_OUTPUT.replace("512.00us", "1.50ms"))["p99_ms"] == 1.5


def test_errors_under_load_fail_the_round():
    with pytest.raises(external_app.BenchError, match="17 answers were not 2xx"):
        external_app.parse_wrk(WRK_OUTPUT + "  Non-2xx or 3xx responses: 17\n")
    with pytest.raises(external_app.BenchError, match="cannot read wrk"):
        external_app.parse_wrk("wrk: connection refused")


def test_markdown_rows_for_the_readme():
    arguments = external_app.parse_arguments(["--duration", "8"])

    def process(role, pid, rss, pss):
        return {"role": role, "pid": pid, "rss_kib": rss, "pss_kib": pss}
    rounds = [
        {"requests_per_second": 100000.0, "p99_ms": 0.5,
         "processes": [process("main", 1, 5000, 1000), process("router", 3, 9000, 4000),
                       process("application", 5, 4000, 1500),
                       process("application", 6, 4200, 1600)]},
        {"requests_per_second": 120000.0, "p99_ms": 0.7,
         "processes": [process("main", 1, 5100, 1000), process("router", 3, 9100, 4100),
                       process("application", 5, 4100, 1500),
                       process("application", 6, 4300, 1700)]},
        {"requests_per_second": 110000.0, "p99_ms": 0.6,
         "processes": [process("main", 1, 5200, 1000), process("router", 3, 9200, 4200),
                       process("application", 5, 4200, 1500),
                       process("application", 6, 4400, 1800)]},
    ]
    nginx = [{"requests_per_second": 200000.0, "p99_ms": 0.3}] * 3
    summary = external_app.summarise(arguments, rounds, nginx)
    assert summary["ratio_rps_canopy_to_nginx"] == 0.55
    text = external_app.markdown(summary)
    lines = text.splitlines()
    assert lines[0] == (
        "| external C++ app `GET /` (2 processes), req/s (wrk -t1 -c50, 8 s, median of 3 "
        "alternating rounds; nginx: `return 200 \"Hello, world!\\n\"`) | 110,000 | 200,000 "
        "| 0.55 |")
    assert lines[1] == ("| external C++ app `GET /` (2 processes), p99 latency | 0.60 ms "
                        "| 0.30 ms | 2.00 |")
    assert "| router | 9,100 | 4,100 |" in lines
    assert "| application #2 | 4,300 | 1,700 |" in lines
    assert lines[-1] == "| all | 22,600 | 8,300 |"
    canopy_only = external_app.markdown(external_app.summarise(arguments, rounds, []))
    assert canopy_only.splitlines()[0].endswith("| 110,000 | — | — |")


# ---- canopyd with the app ---------------------------------------------------------

def binaries():
    canopyd, app = os.environ.get("CANOPYD"), os.environ.get("CANOPY_HELLO_CPP")
    if not canopyd or not app:
        pytest.skip("CANOPYD and CANOPY_HELLO_CPP name the binaries (ctest sets them)")
    return canopyd, app


def test_the_daemon_s_own_processes_are_found():
    canopyd, _ = binaries()
    os.environ["CANOPYD"] = canopyd
    os.environ.setdefault("CANOPY_FIXTURE_GOOD_MODULES_DIR", "/tmp")
    daemon = external_app.Canopy().start()
    try:
        def roles():
            found = [p["role"] for p in external_app.canopy_processes(daemon.process.pid)]
            return found if {"main", "controller", "router"} <= set(found) else None
        found = wait_for(roles)
        assert found, external_app.canopy_processes(daemon.process.pid)
        assert found[:3] == ["main", "controller", "router"]
    finally:
        daemon.close()


def test_check_runs_the_app_or_says_why_not():
    canopyd, app = binaries()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--canopyd", canopyd, "--app", app],
        capture_output=True, text=True, timeout=120)
    if result.returncode == external_app.EXIT_REFUSED:
        # The daemon's side of "external" has not landed: the refusal must
        # say what was refused, why, and with which binaries.
        assert "canopyd refused the configuration of the external application" in result.stderr
        assert "HTTP 400" in result.stderr
        assert canopyd in result.stderr and app in result.stderr
        pytest.skip("canopyd does not run external applications yet: " +
                    result.stderr.splitlines()[0])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "-> 200 'Hello, world!\\n'" in result.stdout
    assert result.stdout.count(" application ") == 2, result.stdout
    for role in ("main", "controller", "router"):
        assert f" {role} " in result.stdout, result.stdout
