#!/usr/bin/python3
"""Python applications under load: canopyd with the Python module against
gunicorn (sync, and gthread with 4 threads), uWSGI (python3 plugin) and
uvicorn (uvloop, httptools), all from Debian's packages, 2 processes each,
the same application files (bench/python_apps/), wrk on the same machine,
same run, alternating rounds, medians.

    bench/python_apps.py [--duration 8] [--rounds 3] [--connections 50]
                         [--warmup 1] [--cases wsgi-hello,...]
                         [--servers canopy,...] [--build build/release]
                         [--canopyd PATH] [--modules DIR] [--check] [--json]

Cases: `wsgi-hello` (GET / → "Hello, world!\\n"), `wsgi-echo-64k` (POST
/echo with a 64 KiB body, answered with the same body; wrk sends it from a
Lua script), `asgi-hello` (the greeting from an ASGI application). For each
server and case: requests/s and p99 from wrk, the resident memory of every
process of the server after the load (summed), and the server's CPU time
per request: utime + stime from /proc/<pid>/stat of every process of the
server, before and after the load, divided by the requests wrk completed.

Every connection is kept alive by wrk; gunicorn's sync workers close each
connection after one answer (that is how they work). uWSGI listens with
`--http11-socket`: the HTTP parser inside its workers, like
`--http-socket`, but keeping connections alive (`--http-socket` closes
each one); never the `--http` router, an extra process in front.

--check starts each server once, checks every case's answer, lists its
processes and stops: no load. A server whose package is not installed is
reported and skipped; Canopy's ASGI row says "not available" while the
module refuses `"protocol": "asgi"`. Exit codes: 0 done, 1 a failure along
the way (said on stderr), 2 bad usage.
"""

import argparse
import json
import os
import re
import resource
import signal
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from canopy_daemon import wait_until  # noqa: E402
from benchtools import (start_canopy, BenchError, CLOCK_TICKS, cpu_ticks, default_build, free_port,  # noqa: E402
                        parse_wrk, positive, process_tree, require_canopyd, require_wrk)
from external_app import process_table, read_status_kib  # noqa: E402

APPS = Path(__file__).resolve().parent / "python_apps"
PYTHON = "/usr/bin/python3"
UWSGI_PYTHON_PLUGIN = Path("/usr/lib/uwsgi/plugins/python3_plugin.so")
GREETING = b"Hello, world!\n"
ECHO_SIZE = 64 * 1024
APP_NAME = "bench"
EXIT_FAILED, EXIT_USAGE = 1, 2
START_TIMEOUT = 30


@dataclass(frozen=True)
class Case:
    name: str
    protocol: str  # "wsgi" or "asgi": which application file
    method: str
    path: str
    body_size: int
    label: str


CASES = {case.name: case for case in (
    Case("wsgi-hello", "wsgi", "GET", "/", 0, "WSGI hello"),
    Case("wsgi-echo-64k", "wsgi", "POST", "/echo", ECHO_SIZE, "WSGI 64 KiB POST echo"),
    Case("asgi-hello", "asgi", "GET", "/", 0, "ASGI hello"),
)}

# The application each protocol runs: module and callable, in APPS.
APPLICATIONS = {"wsgi": ("wsgi_bench", "application"), "asgi": ("asgi_bench", "application")}


# ---- arguments ----------------------------------------------------------------


def names(choices):
    def parse(text):
        chosen = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in chosen if name not in choices]
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown) or '(none given)'}; choose among "
                f"{', '.join(choices)}")
        return chosen
    return parse


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog="Defaults take canopyd from --build (build/release when it holds a "
               "canopyd, else build/dev) and the Python module from its modules/.")
    parser.add_argument("--duration", type=positive, default=8, help="seconds of wrk per run")
    parser.add_argument("--connections", type=positive, default=50)
    parser.add_argument("--rounds", type=positive, default=3,
                        help="alternating rounds; medians are reported")
    parser.add_argument("--warmup", type=int, default=1,
                        help="seconds of unmeasured load before each run (0: none)")
    parser.add_argument("--processes", type=positive, default=2,
                        help="processes (workers) of every server")
    parser.add_argument("--cases", type=names(list(CASES)), default=list(CASES))
    parser.add_argument("--servers", type=names(list(SERVERS)), default=list(SERVERS))
    parser.add_argument("--build", type=Path, default=None,
                        help="build folder holding bin/canopyd and modules/")
    parser.add_argument("--canopyd", type=Path, default=None)
    parser.add_argument("--modules", type=Path, default=None,
                        help="folder holding python3.11.canopy.so (default: modules/ "
                             "beside canopyd's bin/)")
    parser.add_argument("--check", action="store_true",
                        help="start each server once, check every answer, stop; no load")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    arguments = parser.parse_args(argv)
    if arguments.warmup < 0:
        parser.error(f"--warmup must be 0 or more, not {arguments.warmup}")
    arguments.build = arguments.build or default_build()
    arguments.canopyd = (arguments.canopyd or arguments.build / "bin" / "canopyd").resolve()
    arguments.modules = (arguments.modules or arguments.canopyd.parent.parent / "modules")
    return arguments


def check_prerequisites(arguments):
    if "canopy" in arguments.servers:
        require_canopyd(arguments.canopyd, "canopyd canopy_module_python")
        if not list(arguments.modules.glob("python*.canopy.so")):
            raise BenchError(f"no Python module in {arguments.modules}: build it (cmake "
                             "--build --preset release --target canopy_module_python)")
    if not arguments.check:
        require_wrk()


# ---- the processes of a server, from /proc -------------------------------------



def cpu_snapshot(root):
    """pid -> utime + stime (ticks) of every process of the tree."""
    snapshot = {}
    for pid in process_tree(root):
        ticks = cpu_ticks(pid)
        if ticks is not None:
            snapshot[pid] = ticks
    return snapshot


def cpu_seconds_between(before, after):
    """CPU time the tree spent between two snapshots; a process born in
    between counts from zero. One that ended in between is not counted (no
    server here starts or ends processes under load)."""
    ticks = sum(used - before.get(pid, 0) for pid, used in after.items())
    return ticks / CLOCK_TICKS


def memory_of_tree(root):
    """[(pid, title, rss KiB)] of every live process of the tree."""
    table = process_table()
    found = []
    for pid in process_tree(root):
        try:
            rss = read_status_kib(pid, "VmRSS")
        except OSError:
            continue
        if rss is not None:
            found.append((pid, table.get(pid, (0, "?"))[1], rss))
    return found


# ---- wrk ----------------------------------------------------------------------


def wrk_script(case):
    """The Lua that makes wrk send the case's request; wrk adds the
    Content-Length of the body itself."""
    lines = [f'wrk.method = "{case.method}"', f'wrk.path = "{case.path}"']
    if case.body_size:
        lines += [f'wrk.body = string.rep("x", {case.body_size})',
                  'wrk.headers["Content-Type"] = "application/octet-stream"']
    return "\n".join(lines) + "\n"


def wrk_command(port, case, duration, connections, script_path):
    return ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
            "-s", str(script_path), f"http://127.0.0.1:{port}{case.path}"]


def parse_wrk_counts(output):
    """Requests completed and socket errors from wrk's report."""
    requests = re.search(r"(\d+) requests in ", output)
    if requests is None:
        raise BenchError(f"cannot read wrk's request count:\n{output}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    return {"requests": int(requests.group(1)),
            "socket_errors": sum(int(count) for count in errors.groups()) if errors else 0}


# ---- one request, to check an answer --------------------------------------------


def request(port, case, body=None, timeout=5):
    """(status, body) of one request of the case, or (None, reason)."""
    data = body if case.body_size else None
    try:
        call = urllib.request.Request(f"http://127.0.0.1:{port}{case.path}", data=data,
                                      method=case.method)
        if data is not None:
            call.add_header("Content-Type", "application/octet-stream")
        with urllib.request.urlopen(call, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError as error:
        return None, str(error).encode()


def answers_right(port, case):
    """Whether the server answers the case as the application should."""
    if case.body_size:
        body = os.urandom(case.body_size)
        return request(port, case, body) == (200, body)
    return request(port, case) == (200, GREETING)


# ---- the servers ----------------------------------------------------------------


class Unavailable(Exception):
    """This server cannot run this protocol here: the row says why, the
    JSON adds the detail."""

    def __init__(self, reason, detail=""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail

    def __str__(self):
        return f"{self.reason} ({self.detail})" if self.detail else self.reason


class PeerServer:
    """A server started from its command line, in a session of its own."""

    def __init__(self, name, label, protocols, command, missing):
        self.name, self.label, self.protocols = name, label, protocols
        self._command, self._missing = command, missing

    def command(self, protocol, port, processes):
        return self._command(protocol, port, processes)

    def unavailable(self, protocol):
        """Why this server cannot run here, or None."""
        if protocol not in self.protocols:
            return f"{self.label} does not serve {protocol.upper()}"
        return self._missing()

    def start(self, arguments, protocol):
        return RunningPeer(self, arguments, protocol)


def gunicorn_command(worker_class, threads=None):
    def command(protocol, port, processes):
        module, callable_name = APPLICATIONS[protocol]
        argv = ["gunicorn", "--workers", str(processes), "--worker-class", worker_class]
        if threads:
            argv += ["--threads", str(threads)]
        return argv + ["--bind", f"127.0.0.1:{port}", "--chdir", str(APPS),
                       "--log-level", "warning", f"{module}:{callable_name}"]
    return command


def uwsgi_command(protocol, port, processes):
    module, callable_name = APPLICATIONS[protocol]
    return ["uwsgi", "--plugin", "python3", "--http11-socket", f"127.0.0.1:{port}",
            "--processes", str(processes), "--master", "--pythonpath", str(APPS),
            "--module", f"{module}:{callable_name}", "--need-app", "--disable-logging",
            "--die-on-term"]


def uvicorn_command(protocol, port, processes):
    module, callable_name = APPLICATIONS[protocol]
    return [PYTHON, "-m", "uvicorn", "--workers", str(processes), "--loop", "uvloop",
            "--http", "httptools", "--host", "127.0.0.1", "--port", str(port),
            "--app-dir", str(APPS), "--no-access-log", "--log-level", "warning",
            f"{module}:{callable_name}"]


def missing_program(program, package):
    def missing():
        if shutil.which(program) is None:
            return f"not installed (apt-get install {package})"
        return None
    return missing


def missing_uwsgi():
    if shutil.which("uwsgi") is None or not UWSGI_PYTHON_PLUGIN.exists():
        return "not installed (apt-get install uwsgi-core uwsgi-plugin-python3)"
    return None


def missing_uvicorn():
    probe = subprocess.run([PYTHON, "-c", "import uvicorn, uvloop, httptools"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return ("not installed (apt-get install python3-uvicorn python3-uvloop "
                "python3-httptools)")
    return None


class CanopyServer:
    name, label, protocols = "canopy", "Canopy", ("wsgi", "asgi")

    def unavailable(self, protocol):
        return None  # the daemon itself says, when configured

    def start(self, arguments, protocol):
        return RunningCanopy(arguments, protocol)


def canopy_configuration(port, protocol, processes):
    module, callable_name = APPLICATIONS[protocol]
    application = {"type": "python 3.11", "path": str(APPS), "module": module,
                   "callable": callable_name, "processes": processes, "threads": 1}
    if protocol != "wsgi":
        application["protocol"] = protocol
    # listen_threads stays at its default: the router as it ships.
    return {"listeners": {f"127.0.0.1:{port}": {"pass": f"applications/{APP_NAME}"}},
            "applications": {APP_NAME: application}}


SERVERS = {server.name: server for server in (
    CanopyServer(),
    PeerServer("gunicorn-sync", "gunicorn sync", ("wsgi",), gunicorn_command("sync"),
               missing_program("gunicorn", "gunicorn")),
    PeerServer("gunicorn-gthread", "gunicorn gthread (4 threads)", ("wsgi",),
               gunicorn_command("gthread", threads=4), missing_program("gunicorn", "gunicorn")),
    PeerServer("uwsgi", "uWSGI", ("wsgi",), uwsgi_command, missing_uwsgi),
    PeerServer("uvicorn", "uvicorn (uvloop, httptools)", ("asgi",), uvicorn_command,
               missing_uvicorn),
)}


def first_case(protocol):
    return next(case for case in CASES.values() if case.protocol == protocol)


class RunningPeer:
    """A peer server, answering, for a `with` block."""

    def __init__(self, server, arguments, protocol):
        self.server, self.arguments, self.protocol = server, arguments, protocol
        self.port = None
        self.process = None
        self.workdir = None

    @property
    def root_pid(self):
        return self.process.pid

    def __enter__(self):
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"canopy-bench-{self.server.name}-"))
        self.log_path = self.workdir / "server.log"
        argv = self.server.command(self.protocol, self.port, self.arguments.processes)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(argv, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        try:
            self._wait_ready(argv)
        except BaseException:
            self._stop()
            raise
        return self

    def _wait_ready(self, argv):
        case = first_case(self.protocol)
        # Master + workers: every worker up before the load starts.
        wanted = self.arguments.processes + 1
        ready = wait_until(lambda: self.process.poll() is not None or (
            answers_right(self.port, case) and len(process_tree(self.root_pid)) >= wanted),
            timeout=START_TIMEOUT, interval=0.1)
        if self.process.poll() is not None or not ready:
            raise BenchError(f"{self.server.label} did not answer {case.method} {case.path} "
                             f"right within {START_TIMEOUT} s: {' '.join(argv)}\n"
                             f"its output ends:\n{self.log_tail()}")

    def log_tail(self, lines=20):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"

    def __exit__(self, *exception):
        self._stop()

    def _stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        # Whatever of its session is left (workers of a master that died).
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.process.poll() is None:
            self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


class RunningCanopy:
    """canopyd in a private directory with the Python application, answering."""

    def __init__(self, arguments, protocol):
        self.arguments, self.protocol = arguments, protocol
        self.daemon = None
        self.port = None

    @property
    def root_pid(self):
        return self.daemon.process.pid

    def __enter__(self):
        self.daemon = start_canopy(self.arguments.canopyd, self.arguments.modules)
        try:
            self._configure()
        except BaseException:
            self.daemon.close()
            raise
        return self

    def __exit__(self, *exception):
        self.daemon.close()

    def _configure(self):
        self.port = free_port()
        answer = self.daemon.put("/config", canopy_configuration(
            self.port, self.protocol, self.arguments.processes))
        if answer.status != 200:
            try:
                detail = answer.json
                reason = "; ".join(str(detail[key]) for key in ("error", "detail")
                                   if key in detail)
            except ValueError:
                reason = answer.body.strip()
            if self.protocol != "wsgi":
                # Refused by this build: the row says so, the rest runs.
                raise Unavailable(f"not available: canopyd refused \"protocol\": "
                                  f"\"{self.protocol}\"", f"HTTP {answer.status}: {reason}")
            raise BenchError(f"canopyd refused the Python application (HTTP {answer.status}):"
                             f" {reason}\ncanopyd's log ends:\n{self.log_tail()}")
        case = first_case(self.protocol)
        if not wait_until(lambda: answers_right(self.port, case), timeout=START_TIMEOUT):
            raise BenchError(f"canopyd took the configuration, but {case.method} {case.path} "
                             f"does not answer right within {START_TIMEOUT} s. canopyd's log "
                             f"ends:\n{self.log_tail()}")
        if not wait_until(lambda: self.application_count() >= self.arguments.processes,
                          timeout=START_TIMEOUT):
            raise BenchError(f"{self.application_count()} application processes run, "
                             f"{self.arguments.processes} were configured")

    def application_count(self):
        """Processes of the application: canopyd titles them
        `canopy: "bench" application`."""
        table = process_table()
        return sum(1 for pid in process_tree(self.root_pid)
                   if table.get(pid, (0, ""))[1] == f'canopy: "{APP_NAME}" application')

    def log_tail(self, lines=20):
        return "\n".join(self.daemon.log().splitlines()[-lines:]) or "(the log is empty)"


# ---- load -------------------------------------------------------------------


def measure(running, case, arguments, script_path):
    """One measured wrk run of the case against a running server."""
    if not answers_right(running.port, case):
        raise BenchError(f"{case.name}: the server's answer is wrong before the load")
    if arguments.warmup:
        subprocess.run(wrk_command(running.port, case, arguments.warmup, arguments.connections,
                                   script_path), capture_output=True, check=True)
    before = cpu_snapshot(running.root_pid)
    output = subprocess.run(wrk_command(running.port, case, arguments.duration,
                                        arguments.connections, script_path),
                            capture_output=True, text=True, check=True).stdout
    after = cpu_snapshot(running.root_pid)
    result = parse_wrk(output)
    result.update(parse_wrk_counts(output))
    cpu = cpu_seconds_between(before, after)
    result["cpu_seconds"] = round(cpu, 3)
    result["cpu_us_per_request"] = round(cpu * 1e6 / max(result["requests"], 1), 2)
    processes = memory_of_tree(running.root_pid)
    result["rss_kib"] = sum(rss for _, _, rss in processes)
    result["processes"] = [{"pid": pid, "title": title, "rss_kib": rss}
                           for pid, title, rss in processes]
    return result


def protocols_of(cases):
    ordered = []
    for name in cases:
        if CASES[name].protocol not in ordered:
            ordered.append(CASES[name].protocol)
    return ordered


def plan(arguments):
    """[(server, protocol, [case names])] in the order every round runs
    them."""
    steps = []
    for server_name in arguments.servers:
        server = SERVERS[server_name]
        for protocol in protocols_of(arguments.cases):
            if protocol in server.protocols:
                cases = [name for name in arguments.cases if CASES[name].protocol == protocol]
                steps.append((server, protocol, cases))
    return steps


def bench(arguments):
    runs, unavailable = {}, {}
    with tempfile.TemporaryDirectory(prefix="canopy-bench-wrk-") as scripts:
        script_paths = {}
        for name in arguments.cases:
            script_paths[name] = Path(scripts) / f"{name}.lua"
            script_paths[name].write_text(wrk_script(CASES[name]))
        for round_number in range(arguments.rounds):
            for server, protocol, cases in plan(arguments):
                key = (server.name, protocol)
                if key in unavailable:
                    continue
                reason = server.unavailable(protocol)
                if reason is None:
                    try:
                        with server.start(arguments, protocol) as running:
                            for name in cases:
                                result = measure(running, CASES[name], arguments,
                                                 script_paths[name])
                                runs.setdefault(name, {}).setdefault(server.name, []).append(
                                    result)
                                print(f"round {round_number + 1}: {name} {server.name}: "
                                      f"{result['requests_per_second']:,.0f} req/s, "
                                      f"{result['cpu_us_per_request']} µs CPU/request",
                                      file=sys.stderr)
                    except Unavailable as refusal:
                        reason = refusal
                if reason is not None:
                    if not isinstance(reason, Unavailable):
                        reason = Unavailable(reason)
                    unavailable[key] = reason
                    print(f"{server.name} ({protocol}): {reason}", file=sys.stderr)
                    for name in cases:
                        runs.setdefault(name, {})[server.name] = reason
                time.sleep(1)
    return summarise(arguments, runs)


# ---- report -------------------------------------------------------------------

# What the targets compare: (case, numerator server, denominator server,
# what the ratio must reach).
RATIO_TARGETS = (
    ("wsgi-hello", "canopy", "uwsgi", 1.0),
    ("wsgi-hello", "canopy", "gunicorn-sync", 2.0),
    ("wsgi-echo-64k", "canopy", "uwsgi", 1.0),
    ("asgi-hello", "canopy", "uvicorn", 1.0),
)
CPU_TARGET = ("wsgi-hello", "canopy", 40.0)  # µs of server CPU per request, under


def summarise(arguments, runs):
    """Medians per case and server (or the reason a server did not run),
    then the targets' ratios."""
    cases = {}
    for name, by_server in runs.items():
        cases[name] = {}
        for server_name, results in by_server.items():
            if isinstance(results, Unavailable):
                cases[name][server_name] = {"unavailable": results.reason,
                                            "detail": results.detail}
                continue
            cases[name][server_name] = {
                key: statistics.median(result[key] for result in results)
                for key in ("requests_per_second", "p99_ms", "rss_kib", "cpu_us_per_request")}
            cases[name][server_name]["socket_errors"] = sum(
                result["socket_errors"] for result in results)
            cases[name][server_name]["runs"] = len(results)
    targets = []
    for name, ours, theirs, wanted in RATIO_TARGETS:
        a, b = cases.get(name, {}).get(ours), cases.get(name, {}).get(theirs)
        if not a or not b or "unavailable" in a or "unavailable" in b:
            continue
        ratio = round(a["requests_per_second"] / b["requests_per_second"], 2)
        targets.append({"case": name, "what": f"req/s {ours} / {theirs}", "value": ratio,
                        "target": f">= {wanted:g}", "met": ratio >= wanted})
    name, server_name, limit = CPU_TARGET
    ours = cases.get(name, {}).get(server_name)
    if ours and "unavailable" not in ours:
        targets.append({"case": name, "what": f"{server_name} CPU µs/request",
                        "value": ours["cpu_us_per_request"], "target": f"< {limit:g}",
                        "met": ours["cpu_us_per_request"] < limit})
    return {"rounds": arguments.rounds, "duration_s": arguments.duration,
            "warmup_s": arguments.warmup, "connections": arguments.connections,
            "processes": arguments.processes, "cases": cases, "targets": targets}


def markdown(summary):
    """The table and the targets for bench/README.md."""
    lines = [
        f"wrk -t1 -c{summary['connections']} (kept alive), {summary['duration_s']} s after "
        f"{summary['warmup_s']} s of warm-up, median of {summary['rounds']} alternating "
        f"rounds; {summary['processes']} processes per server.",
        "",
        "| Case | Server | req/s | p99 | RSS, all processes | CPU µs/request |",
        "|---|---|---|---|---|---|",
    ]
    for name, by_server in summary["cases"].items():
        for server_name, figures in by_server.items():
            label = f"{CASES[name].label} | {SERVERS[server_name].label}"
            if "unavailable" in figures:
                lines.append(f"| {label} | {figures['unavailable']} | | | |")
                continue
            errors = (f" ({figures['socket_errors']:,} socket errors)"
                      if figures["socket_errors"] else "")
            lines.append(f"| {label} | {figures['requests_per_second']:,.0f}{errors} | "
                         f"{figures['p99_ms']:.2f} ms | {figures['rss_kib'] / 1024:,.1f} MiB | "
                         f"{figures['cpu_us_per_request']:.1f} |")
    if summary["targets"]:
        lines += ["", "| Target | Case | Measured | Wanted | Met |", "|---|---|---|---|---|"]
        for target in summary["targets"]:
            lines.append(f"| {target['what']} | {CASES[target['case']].label} | "
                         f"{target['value']:g} | {target['target']} | "
                         f"{'yes' if target['met'] else 'no'} |")
    return "\n".join(lines)


def check(arguments):
    """Start each server once per protocol, check every case, list its
    processes."""
    for server, protocol, cases in plan(arguments):
        reason = server.unavailable(protocol)
        if reason is not None:
            print(f"{server.label} ({protocol.upper()}): {reason}")
            continue
        try:
            with server.start(arguments, protocol) as running:
                for name in cases:
                    right = answers_right(running.port, CASES[name])
                    print(f"{server.label}: {name} on port {running.port}: "
                          f"{'answers right' if right else 'WRONG ANSWER'}")
                    if not right:
                        raise BenchError(f"{server.label} answers {name} wrong")
                for pid, title, rss in memory_of_tree(running.root_pid):
                    print(f"  {pid:>8} {rss:>8} KiB  {title[:60]}")
        except Unavailable as refusal:
            print(f"{server.label} ({protocol.upper()}): {refusal}")


def run(argv=None):
    arguments = parse_arguments(argv)
    check_prerequisites(arguments)
    if arguments.check:
        check(arguments)
        return
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    summary = bench(arguments)
    print(json.dumps(summary, indent=2) if arguments.json else markdown(summary))


def main():
    try:
        run()
    except BenchError as error:
        print(f"python_apps.py: {error}", file=sys.stderr)
        sys.exit(error.code)
    except subprocess.CalledProcessError as error:
        print(f"python_apps.py: {' '.join(error.cmd)} failed ({error.returncode}): "
              f"{error.stderr}", file=sys.stderr)
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
