#!/usr/bin/python3
"""Requests per second of an external C++ application: canopyd runs
examples/external-cpp's canopy-hello-cpp (2 processes) and passes every
request to it; nginx answers the same text by itself (`return 200`). wrk on
the same machine, same run, alternating rounds; the resident memory of every
Canopy process is read from /proc after each round's load.

    bench/external_app.py [--duration 10] [--connections 50] [--rounds 3]
                          [--build build/release] [--canopyd PATH] [--app PATH]
                          [--processes 2] [--threads 1] [--check] [--json]

--check starts canopyd with the app, checks that `GET /` answers, prints its
processes and exits: no load, no nginx. Exit codes: 0 done, 1 a failure
along the way (said on stderr), 2 bad usage, 3 canopyd refused the
application's configuration.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from canopy_daemon import Canopy, wait_until  # noqa: E402,F401
from benchtools import (start_canopy, BenchError, ConfigurationRefused, default_build,  # noqa: E402,F401
                        fetch, free_port, nginx_binary, parse_wrk, positive,
                        require_canopyd, require_nginx, require_wrk, wrk)

GREETING = "Hello, world!\n"
APP_NAME = "hello-cpp"
EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 1, 2, 3


# ---- arguments ------------------------------------------------------------

def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog="Defaults take canopyd and the app from --build: build/release when it "
               "holds a canopyd, else build/dev.")
    parser.add_argument("--duration", type=positive, default=10, help="seconds of wrk per round")
    parser.add_argument("--connections", type=positive, default=50)
    parser.add_argument("--rounds", type=positive, default=3,
                        help="alternating rounds; medians are reported")
    parser.add_argument("--build", type=Path, default=None,
                        help="build folder holding bin/canopyd and examples/external-cpp/")
    parser.add_argument("--canopyd", type=Path, default=None)
    parser.add_argument("--app", type=Path, default=None,
                        help="the canopy-hello-cpp program")
    parser.add_argument("--processes", type=positive, default=2,
                        help="processes of the application")
    parser.add_argument("--threads", type=positive, default=1,
                        help="serving threads per process (the app's --threads)")
    parser.add_argument("--check", action="store_true",
                        help="start, check that the app answers, list the processes, stop")
    parser.add_argument("--no-nginx", action="store_true", help="measure canopyd only")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    arguments = parser.parse_args(argv)
    build = arguments.build or default_build()
    arguments.build = build
    arguments.canopyd = (arguments.canopyd or build / "bin" / "canopyd").resolve()
    arguments.app = (arguments.app or
                     build / "examples" / "external-cpp" / "canopy-hello-cpp").resolve()
    # Where the build puts modules: next to canopyd's bin/.
    arguments.modules = arguments.canopyd.parent.parent / "modules"
    return arguments


def check_prerequisites(arguments):
    require_canopyd(arguments.canopyd, "canopyd canopy-hello-cpp")
    if not os.access(arguments.app, os.X_OK):
        raise BenchError(f"no canopy-hello-cpp at {arguments.app}: build it (cmake --build "
                         "--preset release --target canopy-hello-cpp) or pass --app")
    if arguments.check:
        return
    require_wrk()
    if not arguments.no_nginx:
        require_nginx(", or pass --no-nginx")


# ---- the processes of a daemon, from /proc ------------------------------------

def read_status_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def read_pss_kib(pid):
    """Proportional set size: shared pages (the transport's memfd segments,
    libraries) divided among the processes that map them. None when the
    kernel does not say."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def process_table():
    """pid -> (ppid, title) of every live process; the title is the first
    field of its command line (canopyd writes `canopy: router` there)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] in ("Z", "X"):
                continue
            title = (entry / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
            table[int(entry.name)] = (int(fields[1]), title)
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return table


def role_of(title, exe, app):
    """What a process is for: `main`, `controller`, `router`, `prototype ...`
    from a `canopy: ...` title; `application` when it runs the app's program
    (found by its executable, whatever title it shows)."""
    if app is not None and exe == app:
        return "application"
    if title.startswith("canopy: "):
        role = title[len("canopy: "):]
        return "main" if role.startswith("main ") or role == "main" else role
    return "other: " + Path(title).name


def canopy_processes(main_pid, app=None):
    """Every live process of the daemon whose main is `main_pid` — main and
    all its descendants — sorted by role then pid, each with its RSS and PSS
    in KiB. `app`: the application's program, to tell its processes."""
    table = process_table()
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, pending = [], [main_pid]
    app = str(Path(app).resolve()) if app is not None else None
    while pending:
        pid = pending.pop()
        if pid not in table:
            continue
        pending.extend(children.get(pid, []))
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
            rss = read_status_kib(pid, "VmRSS")
        except OSError:
            continue  # exited meanwhile
        title = table[pid][1]
        found.append({"pid": pid, "ppid": table[pid][0], "title": title,
                      "role": role_of(title, exe, app), "rss_kib": rss,
                      "pss_kib": read_pss_kib(pid)})
    order = {"main": 0, "controller": 1, "router": 2}
    found.sort(key=lambda process: (order.get(process["role"], 3), process["role"],
                                    process["pid"]))
    return found


def memory_by_name(processes):
    """name -> (rss, pss) with `#1`, `#2` for several processes of one role."""
    counts = {}
    for process in processes:
        counts[process["role"]] = counts.get(process["role"], 0) + 1
    seen, named = {}, {}
    for process in processes:
        role = process["role"]
        seen[role] = seen.get(role, 0) + 1
        name = f"{role} #{seen[role]}" if counts[role] > 1 else role
        named[name] = (process["rss_kib"], process["pss_kib"])
    return named


# ---- canopyd with the app -----------------------------------------------------


def configuration(port, app, processes, threads):
    application = {"type": "external", "executable": str(app), "processes": processes}
    if threads > 1:
        # The program's threads, and as many context slots from the router.
        application["arguments"] = ["--threads", str(threads)]
        application["threads"] = threads
    return {"listeners": {f"127.0.0.1:{port}": {"pass": f"applications/{APP_NAME}"}},
            "applications": {APP_NAME: application},
            "settings": {"listen_threads": 1}}


def log_tail(daemon, lines=20):
    return "\n".join(daemon.log().splitlines()[-lines:]) or "(the log is empty)"


class CanopyWithApp:
    """canopyd in a private directory, configured with the app, answering."""

    def __init__(self, arguments):
        self.arguments = arguments
        self.daemon = None
        self.port = None

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
        arguments = self.arguments
        self.port = free_port()
        answer = self.daemon.put("/config", configuration(
            self.port, arguments.app, arguments.processes, arguments.threads))
        if answer.status != 200:
            try:
                detail = answer.json
                reason = "; ".join(str(detail[key]) for key in ("error", "detail", "path")
                                   if key in detail)
            except ValueError:
                reason = answer.body.strip()
            raise ConfigurationRefused(
                f"canopyd refused the configuration of the external application "
                f"(HTTP {answer.status}): {reason}\n"
                f"canopyd: {arguments.canopyd}\napplication: {arguments.app}\n"
                "Does this canopyd run applications of type \"external\" yet?")
        answered = wait_until(lambda: fetch(self.port) == (200, GREETING), timeout=15)
        if not answered:
            status, body = fetch(self.port)
            raise BenchError(
                f"canopyd took the configuration, but GET / does not answer the greeting "
                f"within 15 s (last answer: {status} {body!r}). canopyd's log ends:\n"
                f"{log_tail(self.daemon)}")
        counted = wait_until(lambda: self.application_count() >= arguments.processes,
                             timeout=10)
        if not counted:
            raise BenchError(
                f"{self.application_count()} processes run {arguments.app}, "
                f"{arguments.processes} were configured. Processes of canopyd:\n" +
                "\n".join(f"  {p['pid']} {p['title']}" for p in self.processes()))

    def processes(self):
        return canopy_processes(self.daemon.process.pid, self.arguments.app)

    def application_count(self):
        return sum(1 for process in self.processes() if process["role"] == "application")


# ---- load -------------------------------------------------------------------


def bench_canopy(arguments):
    with CanopyWithApp(arguments) as canopy:
        result = wrk(f"http://127.0.0.1:{canopy.port}/", arguments.duration, arguments.connections)
        # After the load, while every process still holds what it grew to.
        result["processes"] = canopy.processes()
        return result


def bench_nginx(arguments):
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="canopy-bench-nginx-"))
    (workdir / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
error_log {workdir}/error.log;
pid {workdir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    default_type text/plain;
    server {{ listen 127.0.0.1:{port}; location / {{ return 200 "Hello, world!\\n"; }} }}
}}
""")
    server = subprocess.Popen([nginx_binary(), "-c", str(workdir / "nginx.conf"),
                               "-p", str(workdir)])
    try:
        if not wait_until(lambda: fetch(port) == (200, GREETING)):
            raise BenchError(f"nginx did not answer on port {port}")
        return wrk(f"http://127.0.0.1:{port}/", arguments.duration, arguments.connections)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


# ---- report -------------------------------------------------------------------

def summarise(arguments, canopy_runs, nginx_runs):
    def median(runs, key):
        return statistics.median(run[key] for run in runs)

    memory = {}
    for run in canopy_runs:
        for name, (rss, pss) in memory_by_name(run["processes"]).items():
            memory.setdefault(name, {"rss": [], "pss": []})
            memory[name]["rss"].append(rss)
            if pss is not None:
                memory[name]["pss"].append(pss)
    summary = {
        "rounds": arguments.rounds, "duration_s": arguments.duration,
        "connections": arguments.connections, "processes": arguments.processes,
        "threads": arguments.threads,
        "canopy": {"requests_per_second": median(canopy_runs, "requests_per_second"),
                   "p99_ms": median(canopy_runs, "p99_ms")},
        "memory_kib": {name: {"rss": statistics.median(values["rss"]),
                              "pss": statistics.median(values["pss"]) if values["pss"] else None}
                       for name, values in memory.items()},
    }
    if nginx_runs:
        nginx = {"requests_per_second": median(nginx_runs, "requests_per_second"),
                 "p99_ms": median(nginx_runs, "p99_ms")}
        summary["nginx"] = nginx
        summary["ratio_rps_canopy_to_nginx"] = round(
            summary["canopy"]["requests_per_second"] / nginx["requests_per_second"], 2)
        summary["ratio_p99_canopy_to_nginx"] = round(
            summary["canopy"]["p99_ms"] / max(nginx["p99_ms"], 0.001), 2)
    return summary


def markdown(summary):
    """Rows for the Results table of bench/README.md, then a table of the
    Canopy processes' memory."""
    canopy, nginx = summary["canopy"], summary.get("nginx")
    setup = (f"wrk -t1 -c{summary['connections']}, {summary['duration_s']} s, "
             f"median of {summary['rounds']} alternating rounds")
    app = (f"external C++ app `GET /` ({summary['processes']} processes"
           + (f", {summary['threads']} threads each" if summary["threads"] > 1 else "") + ")")

    def row(label, ours, theirs, ratio):
        return f"| {label} | {ours} | {theirs} | {ratio} |"

    lines = [
        row(f"{app}, req/s ({setup}; nginx: `return 200 \"Hello, world!\\n\"`)",
            f"{canopy['requests_per_second']:,.0f}",
            f"{nginx['requests_per_second']:,.0f}" if nginx else "—",
            f"{summary['ratio_rps_canopy_to_nginx']:.2f}" if nginx else "—"),
        row(f"{app}, p99 latency", f"{canopy['p99_ms']:.2f} ms",
            f"{nginx['p99_ms']:.2f} ms" if nginx else "—",
            f"{summary['ratio_p99_canopy_to_nginx']:.2f}" if nginx else "—"),
        "",
        "| Canopy process (after the load) | RSS, KiB | PSS, KiB |",
        "|---|---|---|",
    ]
    total_rss, total_pss = 0, 0
    for name, values in summary["memory_kib"].items():
        pss = values["pss"]
        total_rss += values["rss"]
        total_pss += pss or 0
        lines.append(f"| {name} | {values['rss']:,.0f} | "
                     f"{'—' if pss is None else f'{pss:,.0f}'} |")
    lines.append(f"| all | {total_rss:,.0f} | {total_pss:,.0f} |")
    return "\n".join(lines)


def check(arguments):
    with CanopyWithApp(arguments) as canopy:
        status, body = fetch(canopy.port)
        print(f"GET http://127.0.0.1:{canopy.port}/ -> {status} {body!r}")
        for process in canopy.processes():
            print(f"{process['pid']:>8} {process['rss_kib']:>8} KiB  {process['role']:<14} "
                  f"{process['title'][:60]}")


def run(argv=None):
    arguments = parse_arguments(argv)
    check_prerequisites(arguments)
    if arguments.check:
        check(arguments)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # Alternating rounds, medians: whatever else the machine does weighs on
    # both servers alike.
    canopy_runs, nginx_runs = [], []
    for _ in range(arguments.rounds):
        canopy_runs.append(bench_canopy(arguments))
        time.sleep(1)
        if not arguments.no_nginx:
            nginx_runs.append(bench_nginx(arguments))
            time.sleep(1)
    summary = summarise(arguments, canopy_runs, nginx_runs)
    print(json.dumps(summary, indent=2) if arguments.json else markdown(summary))


def main():
    try:
        run()
    except BenchError as error:
        print(f"external_app.py: {error}", file=sys.stderr)
        sys.exit(error.code)


if __name__ == "__main__":
    main()
