#!/usr/bin/python3
"""Requests per second of a Rack hello: canopyd's Ruby module against Puma
(Debian's `puma`), both with 2 worker processes, at 1 and at 4 threads per
process, serving the same config.ru (bench/rack_hello/config.ru), in one
run. wrk on the same machine, alternating rounds, medians. For each server:
req/s, p99 latency, the resident memory of all its processes after the load,
and its CPU time (user + system, every process of the server, from /proc)
per request.

    bench/rack_hello.py [--duration 10] [--connections 50] [--rounds 3]
                        [--threads 1,4] [--processes 2] [--warmup 2]
                        [--build build/release] [--canopyd PATH] [--check] [--json]

--check starts both servers with the application, checks that each answers
and lists their processes, then stops: no load. Exit codes: 0 done, 1 a
failure along the way (said on stderr), 2 bad usage, 3 canopyd refused the
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
from canopy_daemon import wait_until  # noqa: E402
from benchtools import (start_canopy, BenchError, ConfigurationRefused, cpu_seconds,  # noqa: E402
                        default_build, fetch, free_port, positive, process_tree,
                        require_canopyd, require_wrk, rss_kib, wrk)

APP = Path(__file__).resolve().parent / "rack_hello" / "config.ru"
GREETING = "Hello, world!\n"
APP_NAME = "rack-hello"
EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 1, 2, 3


# ---- arguments ------------------------------------------------------------

def thread_counts(text):
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a comma-separated list of integers, not {text!r}")
    if not counts or any(count < 1 or count > 256 for count in counts):
        raise argparse.ArgumentTypeError(f"thread counts are 1...256, not {text!r}")
    return counts


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog="Defaults take canopyd and its modules from --build: build/release when it "
               "holds a canopyd, else build/dev.")
    parser.add_argument("--duration", type=positive, default=10, help="seconds of wrk per round")
    parser.add_argument("--connections", type=positive, default=50)
    parser.add_argument("--rounds", type=positive, default=3,
                        help="alternating rounds; medians are reported")
    parser.add_argument("--threads", type=thread_counts, default=[1, 4],
                        help="threads per process to measure, e.g. 1,4")
    parser.add_argument("--processes", type=positive, default=2,
                        help="worker processes of each server")
    parser.add_argument("--warmup", type=int, default=2,
                        help="seconds of load before each measurement (0: none)")
    parser.add_argument("--build", type=Path, default=None,
                        help="build folder holding bin/canopyd and modules/")
    parser.add_argument("--canopyd", type=Path, default=None)
    parser.add_argument("--check", action="store_true",
                        help="start both servers, check that they answer, list their processes")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    arguments = parser.parse_args(argv)
    if arguments.warmup < 0:
        parser.error("--warmup must be 0 or more")
    build = arguments.build or default_build()
    arguments.build = build
    arguments.canopyd = (arguments.canopyd or build / "bin" / "canopyd").resolve()
    # Where the build puts modules: next to canopyd's bin/.
    arguments.modules = arguments.canopyd.parent.parent / "modules"
    return arguments


def check_prerequisites(arguments):
    require_canopyd(arguments.canopyd, "canopyd canopy_module_ruby")
    if not list(arguments.modules.glob("ruby*.canopy.so")):
        raise BenchError(f"no Ruby module in {arguments.modules}: build it (cmake --build "
                         "build/release --target canopy_module_ruby)")
    if puma_binary() is None:
        raise BenchError("puma is not installed: apt-get install puma")
    if not arguments.check:
        require_wrk()


def puma_binary():
    found = shutil.which("puma")
    if found:
        return found
    return "/usr/bin/puma" if os.access("/usr/bin/puma", os.X_OK) else None


# ---- the processes of a server, from /proc -----------------------------------

def titles(pids):
    shown = []
    for pid in pids:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        shown.append((pid, raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")))
    return shown


# ---- the servers --------------------------------------------------------------

def canopy_configuration(port, processes, threads):
    return {"listeners": {f"127.0.0.1:{port}": {"pass": f"applications/{APP_NAME}"}},
            "applications": {APP_NAME: {"type": "ruby", "script": str(APP),
                                        "processes": processes, "threads": threads}},
            "settings": {"listen_threads": 1}}


def puma_command(port, processes, threads):
    return [puma_binary(), "--quiet", "--environment", "production",
            "--workers", str(processes), "--threads", f"{threads}:{threads}",
            "--bind", f"tcp://127.0.0.1:{port}", str(APP)]


class CanopyServer:
    name = "canopy"

    def __init__(self, arguments, threads):
        self.arguments = arguments
        self.threads = threads
        self.daemon = None
        self.port = free_port()

    def __enter__(self):
        self.daemon = start_canopy(self.arguments.canopyd, self.arguments.modules)
        try:
            answer = self.daemon.put("/config", canopy_configuration(
                self.port, self.arguments.processes, self.threads))
            if answer.status != 200:
                raise ConfigurationRefused(
                    f"canopyd refused the Ruby application (HTTP {answer.status}): "
                    f"{answer.body.strip()}")
            self._wait_for_workers()
        except BaseException:
            self.daemon.close()
            raise
        return self

    def _wait_for_workers(self):
        if not wait_until(lambda: fetch(self.port) == (200, GREETING), timeout=30):
            raise BenchError("canopyd does not answer the greeting; its log ends:\n"
                             + "\n".join(self.daemon.log().splitlines()[-20:]))
        prototype = f'canopy: "{APP_NAME}" application'
        counted = wait_until(lambda: sum(1 for _, title in titles(self.pids())
                                         if title == prototype) >= self.arguments.processes,
                             timeout=30)
        if not counted:
            raise BenchError(f"fewer than {self.arguments.processes} application processes: "
                             f"{titles(self.pids())}")

    def __exit__(self, *exception):
        self.daemon.close()

    def pids(self):
        return process_tree(self.daemon.process.pid)


class PumaServer:
    name = "puma"

    def __init__(self, arguments, threads):
        self.arguments = arguments
        self.threads = threads
        self.port = free_port()
        self.process = None
        self.log = None

    def __enter__(self):
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(puma_command(self.port, self.arguments.processes,
                                                     self.threads),
                                        stdin=subprocess.DEVNULL, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        try:
            answered = wait_until(lambda: fetch(self.port) == (200, GREETING), timeout=30)
            # Puma's master plus its workers.
            counted = answered and wait_until(
                lambda: len(self.pids()) >= self.arguments.processes + 1, timeout=30)
            if not counted:
                self.log.seek(0)
                raise BenchError(f"puma did not answer with {self.arguments.processes} "
                                 f"workers:\n{self.log.read().decode(errors='replace')}")
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exception):
        self._stop()

    def _stop(self):
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def pids(self):
        return process_tree(self.process.pid)


# ---- load ---------------------------------------------------------------------

def measure(server_class, arguments, threads):
    with server_class(arguments, threads) as server:
        url = f"http://127.0.0.1:{server.port}/"
        if arguments.warmup:
            wrk(url, arguments.warmup, arguments.connections)
        pids = server.pids()
        before = cpu_seconds(pids)
        result = wrk(url, arguments.duration, arguments.connections)
        used = cpu_seconds(pids) - before
        requests = result["requests_per_second"] * arguments.duration
        result["cpu_us_per_request"] = round(used * 1e6 / requests, 1) if requests else None
        # After the load, while every process still holds what it grew to.
        result["rss_kib"] = rss_kib(server.pids())
        result["processes"] = len(pids)
        return result


# ---- report -------------------------------------------------------------------

KEYS = ("requests_per_second", "p99_ms", "rss_kib", "cpu_us_per_request")


def summarise(arguments, runs):
    """runs: {threads: {"canopy": [result...], "puma": [result...]}}."""
    summary = {"rounds": arguments.rounds, "duration_s": arguments.duration,
               "connections": arguments.connections, "processes": arguments.processes,
               "by_threads": {}}
    for threads, servers in runs.items():
        medians = {name: {key: statistics.median(run[key] for run in results)
                          for key in KEYS}
                   for name, results in servers.items()}
        canopy, puma = medians["canopy"], medians["puma"]
        medians["ratio_rps_canopy_to_puma"] = round(
            canopy["requests_per_second"] / puma["requests_per_second"], 2)
        summary["by_threads"][threads] = medians
    return summary


def markdown(summary):
    """Rows for the Results table of bench/README.md."""
    lines = ["| Threads per process | Server | req/s | p99 | RSS, all processes | "
             "CPU per request | Canopy / Puma, req/s |",
             "|---|---|---|---|---|---|---|"]
    for threads, figures in summary["by_threads"].items():
        for name, label in (("canopy", "Canopy"), ("puma", "Puma 5.6")):
            row = figures[name]
            ratio = f"{figures['ratio_rps_canopy_to_puma']:.2f}" if name == "canopy" else ""
            lines.append(f"| {threads} | {label} | {row['requests_per_second']:,.0f} | "
                         f"{row['p99_ms']:.2f} ms | {row['rss_kib'] / 1024:,.1f} MiB | "
                         f"{row['cpu_us_per_request']:.0f} µs | {ratio} |")
    return "\n".join(lines)


def check(arguments):
    for server_class in (CanopyServer, PumaServer):
        with server_class(arguments, arguments.threads[0]) as server:
            status, body = fetch(server.port)
            print(f"{server.name}: GET http://127.0.0.1:{server.port}/ -> {status} {body!r}")
            for pid, title in titles(server.pids()):
                print(f"{pid:>8} {title[:70]}")


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
    runs = {threads: {"canopy": [], "puma": []} for threads in arguments.threads}
    for _ in range(arguments.rounds):
        for threads in arguments.threads:
            for server_class in (CanopyServer, PumaServer):
                runs[threads][server_class.name].append(
                    measure(server_class, arguments, threads))
                time.sleep(1)
    summary = summarise(arguments, runs)
    print(json.dumps(summary, indent=2) if arguments.json else markdown(summary))


def main():
    try:
        run()
    except BenchError as error:
        print(f"rack_hello.py: {error}", file=sys.stderr)
        sys.exit(error.code)


if __name__ == "__main__":
    main()
