#!/usr/bin/python3
"""Requests per second through a reverse proxy: canopyd's `proxy` action
against nginx's `proxy_pass` (upstream keepalive, HTTP/1.1), both in front of
the same backend (a separate nginx answering `return 200`), one worker each,
wrk on the same machine, same run, alternating rounds, medians.

    bench/proxy.py [--duration 10] [--connections 50] [--rounds 3]
                   [--listen-threads 1] [--canopyd PATH] [--json]

Prints Markdown rows for the "Proxy" table of bench/README.md (`--json`
for the figures). Exit codes: 0 done, 1 a failure along the way (said on
stderr), 2 bad usage.
"""

import argparse
import json
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

EXIT_FAILED, EXIT_USAGE = 1, 2
BACKEND_MARK = "X-Bench-Backend"  # set by the backend: proves the answer went through


# ---- arguments ----------------------------------------------------------------


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--duration", type=positive, default=10, help="seconds of wrk per run")
    parser.add_argument("--connections", type=positive, default=50)
    parser.add_argument("--rounds", type=positive, default=3,
                        help="alternating rounds; medians are reported")
    parser.add_argument("--listen-threads", type=positive, default=1,
                        help="canopyd's settings.listen_threads = the front nginx's "
                             "worker_processes")
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


# ---- the servers ----------------------------------------------------------------


def backend_configuration(workdir, port):
    return f"""
worker_processes 1;
daemon off;
error_log {workdir}/error.log;
pid {workdir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ add_header {BACKEND_MARK} 1; return 200; }}
    }}
}}
"""


def nginx_proxy_configuration(workdir, port, backend_port, workers):
    # What an nginx user writes for a kept-alive upstream: HTTP/1.1, the
    # Connection field cleared, a keepalive pool.
    return f"""
worker_processes {workers};
daemon off;
error_log {workdir}/error.log;
pid {workdir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    upstream backend {{
        server 127.0.0.1:{backend_port};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def canopy_configuration(port, backend_port, listen_threads):
    return {"listeners": {f"127.0.0.1:{port}": {"pass": "routes"}},
            "routes": [{"action": {"proxy": f"http://127.0.0.1:{backend_port}"}}],
            "settings": {"listen_threads": listen_threads}}


def proxied(port):
    """The answer came from the backend through the proxy on `port`."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
            return answer.status == 200 and answer.headers.get(BACKEND_MARK) == "1"
    except (urllib.error.URLError, OSError):
        return False


class Nginx:
    """An nginx with a private configuration, stopped on exit."""

    def __init__(self, make_configuration):
        self.workdir = Path(tempfile.mkdtemp(prefix="canopy-bench-nginx-"))
        (self.workdir / "nginx.conf").write_text(make_configuration(self.workdir))
        self.process = subprocess.Popen([nginx_binary(), "-c", str(self.workdir / "nginx.conf"),
                                         "-p", str(self.workdir)])

    def close(self):
        self.process.terminate()
        self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def bench_canopy(arguments, backend_port):
    daemon = start_canopy(arguments.canopyd)
    try:
        port = free_port()
        answer = daemon.put("/config", canopy_configuration(port, backend_port,
                                                            arguments.listen_threads))
        if answer.status != 200:
            raise BenchError(f"canopyd refused the configuration (HTTP {answer.status}): "
                             f"{answer.body.strip()}")
        if not wait_until(lambda: proxied(port), timeout=15):
            raise BenchError("canopyd does not pass requests to the backend. Its log ends:\n"
                             + "\n".join(daemon.log().splitlines()[-20:]))
        return wrk(f"http://127.0.0.1:{port}/", arguments.duration, arguments.connections)
    finally:
        daemon.close()


def bench_nginx(arguments, backend_port):
    port = free_port()
    front = Nginx(lambda workdir: nginx_proxy_configuration(workdir, port, backend_port,
                                                            arguments.listen_threads))
    try:
        if not wait_until(lambda: proxied(port)):
            raise BenchError(f"nginx does not pass requests to the backend on port {port}")
        return wrk(f"http://127.0.0.1:{port}/", arguments.duration, arguments.connections)
    finally:
        front.close()


# ---- report -------------------------------------------------------------------------

def summarise(arguments, canopy_runs, nginx_runs):
    """Medians per server and the ratios Canopy / nginx."""
    def median(runs, key):
        return statistics.median(run[key] for run in runs)

    keys = ("requests_per_second", "p99_ms")
    canopy = {key: median(canopy_runs, key) for key in keys}
    nginx = {key: median(nginx_runs, key) for key in keys}
    return {"rounds": arguments.rounds, "duration_s": arguments.duration,
            "connections": arguments.connections, "listen_threads": arguments.listen_threads,
            "canopy": canopy, "nginx": nginx,
            "runs": {"canopy": canopy_runs, "nginx": nginx_runs},
            "ratio_rps_canopy_to_nginx":
                round(canopy["requests_per_second"] / nginx["requests_per_second"], 2),
            "ratio_p99_canopy_to_nginx": round(canopy["p99_ms"] / max(nginx["p99_ms"], 0.001), 2)}


def markdown(summary):
    """Rows for the "Proxy" table of bench/README.md."""
    setup = (f"wrk -t1 -c{summary['connections']}, {summary['duration_s']} s, "
             f"median of {summary['rounds']} alternating rounds")
    canopy, nginx = summary["canopy"], summary["nginx"]
    return "\n".join([
        f"| proxied `return 200`, req/s ({setup}) | {canopy['requests_per_second']:,.0f} | "
        f"{nginx['requests_per_second']:,.0f} | {summary['ratio_rps_canopy_to_nginx']:.2f} |",
        f"| proxied `return 200`, p99 latency | {canopy['p99_ms']:.2f} ms | "
        f"{nginx['p99_ms']:.2f} ms | {summary['ratio_p99_canopy_to_nginx']:.2f} |"])


def run(argv=None):
    arguments = parse_arguments(argv)
    check_prerequisites(arguments)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    backend_port = free_port()
    backend = Nginx(lambda workdir: backend_configuration(workdir, backend_port))
    try:
        if not wait_until(lambda: proxied(backend_port)):
            raise BenchError(f"the backend nginx does not answer on port {backend_port}")
        # Alternating rounds, medians: whatever else the machine does weighs
        # on both proxies alike.
        canopy_runs, nginx_runs = [], []
        for _ in range(arguments.rounds):
            canopy_runs.append(bench_canopy(arguments, backend_port))
            time.sleep(1)
            nginx_runs.append(bench_nginx(arguments, backend_port))
            time.sleep(1)
    finally:
        backend.close()
    summary = summarise(arguments, canopy_runs, nginx_runs)
    print(json.dumps(summary, indent=2) if arguments.json else markdown(summary))


def main():
    try:
        run()
    except BenchError as error:
        print(f"proxy.py: {error}", file=sys.stderr)
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
