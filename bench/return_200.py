#!/usr/bin/python3
"""Requests per second for `return 200` on a kept-alive connection: canopyd's
router against nginx, one worker each, wrk on the same machine, same run.

    bench/return_200.py [--duration 10] [--connections 50] [--canopyd PATH]
"""

import argparse
import json
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from canopy_daemon import Canopy, wait_until  # noqa: E402
from benchtools import free_port, wrk  # noqa: E402
import os  # noqa: E402


def bench_canopy(binary, duration, connections):
    os.environ["CANOPYD"] = binary
    os.environ.setdefault("CANOPY_FIXTURE_GOOD_MODULES_DIR", tempfile.gettempdir())
    daemon = Canopy().start()
    try:
        port = free_port()
        answer = daemon.put("/config", {
            "listeners": {f"127.0.0.1:{port}": {"pass": "routes"}},
            "routes": [{"action": {"return": 200}}],
            "settings": {"listen_threads": 1}})
        assert answer.status == 200, answer
        return wrk(f"http://127.0.0.1:{port}/", duration, connections)
    finally:
        daemon.close()


def bench_nginx(duration, connections):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
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
    server {{ listen 127.0.0.1:{port}; location / {{ return 200; }} }}
}}
""")
    server = subprocess.Popen([nginx, "-c", str(workdir / "nginx.conf"), "-p", str(workdir)])
    try:
        def up():
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                return True
            except OSError:
                return False
        wait_until(up)
        return wrk(f"http://127.0.0.1:{port}/", duration, connections)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds; medians are reported")
    root = Path(__file__).resolve().parent.parent
    default = root / "build" / "release" / "bin" / "canopyd"
    parser.add_argument("--canopyd", default=str(default))
    arguments = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # Alternating rounds, medians: whatever else the machine does weighs on
    # both servers alike.
    canopy_runs, nginx_runs = [], []
    for _ in range(arguments.rounds):
        canopy_runs.append(bench_canopy(arguments.canopyd, arguments.duration,
                                        arguments.connections))
        time.sleep(1)
        nginx_runs.append(bench_nginx(arguments.duration, arguments.connections))
        time.sleep(1)

    def median(runs, key):
        return statistics.median(run[key] for run in runs)

    canopy = {"requests_per_second": median(canopy_runs, "requests_per_second"),
              "p99_ms": median(canopy_runs, "p99_ms")}
    nginx = {"requests_per_second": median(nginx_runs, "requests_per_second"),
             "p99_ms": median(nginx_runs, "p99_ms")}
    print(json.dumps({"rounds": arguments.rounds, "canopy": canopy, "nginx": nginx,
                      "ratio_rps_canopy_to_nginx":
                          round(canopy["requests_per_second"] / nginx["requests_per_second"], 2),
                      "ratio_p99_canopy_to_nginx":
                          round(canopy["p99_ms"] / max(nginx["p99_ms"], 0.001), 2)},
                     indent=2))


if __name__ == "__main__":
    main()
