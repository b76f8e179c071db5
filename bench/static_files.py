#!/usr/bin/python3
"""Requests per second of static files: canopyd's router serving a directory
with `{"share": "<dir>$uri"}` against nginx serving it with `root <dir>;`
and `sendfile on;`, the same worker count, a 1 KiB and a 1 MiB file, wrk on
the same machine, same run, alternating rounds, medians.

    bench/static_files.py [--duration 10] [--connections 50] [--rounds 3]
                          [--listen-threads 1] [--canopyd PATH] [--json]

The files live in a fresh directory under /tmp (0755, files 0644): the
router runs as `nobody` and must be able to read them. Prints Markdown rows
for the "Static files" table of bench/README.md (`--json` for the figures).
Exit codes: 0 done, 1 a failure along the way (said on stderr), 2 bad usage.
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
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from canopy_daemon import wait_until  # noqa: E402
from benchtools import (start_canopy, BenchError, free_port, nginx_binary, parse_wrk,  # noqa: E402,F401
                        positive, require_canopyd, require_nginx, require_wrk, wrk)

# name -> size; the label is what the table says.
FILES = {"1k.bin": 1024, "1m.bin": 1024 * 1024}
LABELS = {"1k.bin": "1 KiB file", "1m.bin": "1 MiB file"}
EXIT_FAILED, EXIT_USAGE = 1, 2


# ---- arguments ----------------------------------------------------------------


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--duration", type=positive, default=10, help="seconds of wrk per run")
    parser.add_argument("--connections", type=positive, default=50)
    parser.add_argument("--rounds", type=positive, default=3,
                        help="alternating rounds; medians are reported")
    parser.add_argument("--listen-threads", type=positive, default=1,
                        help="canopyd's settings.listen_threads = nginx's worker_processes")
    parser.add_argument("--canopyd", type=Path,
                        default=ROOT / "build" / "release" / "bin" / "canopyd")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    arguments = parser.parse_args(argv)
    arguments.canopyd = arguments.canopyd.resolve()
    return arguments


def check_prerequisites(arguments):
    require_canopyd(arguments.canopyd)
    require_wrk()
    require_nginx()


# ---- the files -------------------------------------------------------------------

def make_files(parent=None):
    """A directory readable by everyone (the router runs as nobody) holding
    FILES; returns its path. The caller removes it."""
    directory = Path(tempfile.mkdtemp(prefix="canopy-bench-static-", dir=parent or "/tmp"))
    os.chmod(directory, 0o755)
    for name, size in FILES.items():
        path = directory / name
        path.write_bytes(os.urandom(size))
        os.chmod(path, 0o644)
    return directory


# ---- load -------------------------------------------------------------------------


def fetch(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return None, None


def serves_files(port, directory):
    """Every file answers 200 with its exact bytes."""
    return all(fetch(port, "/" + name) == (200, (directory / name).read_bytes())
               for name in FILES)


def canopy_configuration(port, directory, listen_threads):
    return {"listeners": {f"127.0.0.1:{port}": {"pass": "routes"}},
            "routes": [{"action": {"share": f"{directory}$uri"}}],
            "settings": {"listen_threads": listen_threads}}


def bench_canopy(arguments, directory):
    daemon = start_canopy(arguments.canopyd)
    try:
        port = free_port()
        answer = daemon.put("/config", canopy_configuration(port, directory,
                                                            arguments.listen_threads))
        if answer.status != 200:
            raise BenchError(f"canopyd refused the configuration (HTTP {answer.status}): "
                             f"{answer.body.strip()}")
        if not wait_until(lambda: serves_files(port, directory), timeout=15):
            raise BenchError(f"canopyd does not serve the files of {directory} on port {port} "
                             f"(are they readable by nobody?). Its log ends:\n"
                             + "\n".join(daemon.log().splitlines()[-20:]))
        return {name: wrk(f"http://127.0.0.1:{port}/{name}", arguments.duration,
                          arguments.connections)
                for name in FILES}
    finally:
        daemon.close()


def nginx_configuration(workdir, port, directory, workers):
    # Debian's defaults where they matter: sendfile on, tcp_nopush off,
    # tcp_nodelay on, no open_file_cache; access log off as in canopyd.
    return f"""
worker_processes {workers};
daemon off;
error_log {workdir}/error.log;
pid {workdir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    sendfile on;
    types {{ application/octet-stream bin; }}
    default_type application/octet-stream;
    server {{ listen 127.0.0.1:{port}; root {directory}; }}
}}
"""


def bench_nginx(arguments, directory):
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="canopy-bench-nginx-"))
    (workdir / "nginx.conf").write_text(
        nginx_configuration(workdir, port, directory, arguments.listen_threads))
    server = subprocess.Popen([nginx_binary(), "-c", str(workdir / "nginx.conf"),
                               "-p", str(workdir)])
    try:
        if not wait_until(lambda: serves_files(port, directory)):
            raise BenchError(f"nginx does not serve the files of {directory} on port {port}")
        return {name: wrk(f"http://127.0.0.1:{port}/{name}", arguments.duration,
                          arguments.connections)
                for name in FILES}
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


# ---- report -------------------------------------------------------------------------

def summarise(arguments, canopy_runs, nginx_runs):
    """Medians per file and server, and the ratios Canopy / nginx."""
    def median(runs, name, key):
        return statistics.median(run[name][key] for run in runs)

    summary = {"rounds": arguments.rounds, "duration_s": arguments.duration,
               "connections": arguments.connections,
               "listen_threads": arguments.listen_threads, "files": {}}
    for name in FILES:
        canopy = {key: median(canopy_runs, name, key)
                  for key in ("requests_per_second", "p99_ms")}
        nginx = {key: median(nginx_runs, name, key)
                 for key in ("requests_per_second", "p99_ms")}
        summary["files"][name] = {
            "bytes": FILES[name], "canopy": canopy, "nginx": nginx,
            "ratio_rps_canopy_to_nginx":
                round(canopy["requests_per_second"] / nginx["requests_per_second"], 2),
            "ratio_p99_canopy_to_nginx":
                round(canopy["p99_ms"] / max(nginx["p99_ms"], 0.001), 2)}
    return summary


def markdown(summary):
    """Rows for the "Static files" table of bench/README.md."""
    setup = (f"wrk -t1 -c{summary['connections']}, {summary['duration_s']} s, "
             f"median of {summary['rounds']} alternating rounds")
    lines = []
    for name, figures in summary["files"].items():
        canopy, nginx = figures["canopy"], figures["nginx"]
        label = LABELS.get(name, name)
        lines.append(f"| {label}, req/s ({setup}) | {canopy['requests_per_second']:,.0f} | "
                     f"{nginx['requests_per_second']:,.0f} | "
                     f"{figures['ratio_rps_canopy_to_nginx']:.2f} |")
        lines.append(f"| {label}, p99 latency | {canopy['p99_ms']:.2f} ms | "
                     f"{nginx['p99_ms']:.2f} ms | {figures['ratio_p99_canopy_to_nginx']:.2f} |")
    return "\n".join(lines)


def run(argv=None):
    arguments = parse_arguments(argv)
    check_prerequisites(arguments)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    directory = make_files()
    try:
        # Alternating rounds, medians: whatever else the machine does weighs
        # on both servers alike.
        canopy_runs, nginx_runs = [], []
        for _ in range(arguments.rounds):
            canopy_runs.append(bench_canopy(arguments, directory))
            time.sleep(1)
            nginx_runs.append(bench_nginx(arguments, directory))
            time.sleep(1)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    summary = summarise(arguments, canopy_runs, nginx_runs)
    print(json.dumps(summary, indent=2) if arguments.json else markdown(summary))


def main():
    try:
        run()
    except BenchError as error:
        print(f"static_files.py: {error}", file=sys.stderr)
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
