#!/usr/bin/python3
"""TLS listeners: canopyd's router against nginx, one worker each, the same
certificate (EC P-256), wrk on the same machine, alternating rounds.

    bench/tls.py [--duration 8] [--rounds 3] [--connections 50] [--canopyd PATH]

Three loads: `return 200` on kept-alive TLS connections (record encryption
and the I/O path), a full handshake per request (`Connection: close`, no
session resumption on either side), and a 1 MiB static file (nginx cannot
use sendfile with TLS either; both encrypt in user space).
"""

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from canopy_daemon import Canopy, wait_until  # noqa: E402
from benchtools import BenchError, free_port, nginx_binary, parse_wrk, positive  # noqa: E402

LOADS = {
    "keep-alive": ("/return", []),
    "handshake per request": ("/return", ["-H", "Connection: close"]),
    "1 MiB file": ("/file.bin", []),
}


def wrk(url, duration, connections, extra):
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", *extra, url],
        capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def make_material(directory):
    """A self-signed certificate for bench.example and a 1 MiB file, readable by nobody."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=bench.example", "-addext", "subjectAltName=DNS:bench.example",
                    "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")],
                   check=True, capture_output=True)
    www = directory / "www"
    www.mkdir(mode=0o755)
    (www / "file.bin").write_bytes(os.urandom(1024 * 1024))
    os.chmod(www / "file.bin", 0o644)
    os.chmod(directory, 0o755)
    return www


def up(port):
    try:
        socket.create_connection(("127.0.0.1", port)).close()
        return True
    except OSError:
        return False


def bench_canopy(binary, directory, www, duration, connections):
    os.environ["CANOPYD"] = binary
    os.environ.setdefault("CANOPY_FIXTURE_GOOD_MODULES_DIR", tempfile.gettempdir())
    daemon = Canopy().start()
    try:
        bundle = (directory / "cert.pem").read_text() + (directory / "key.pem").read_text()
        assert daemon.put("/certificates/bench", bundle).status == 200
        port = free_port()
        answer = daemon.put("/config", {
            "listeners": {f"127.0.0.1:{port}": {"pass": "routes",
                                                "tls": {"certificate": "bench"}}},
            "routes": [{"match": {"uri": "/return"}, "action": {"return": 200}},
                       {"action": {"share": f"{www}$uri"}}],
            "settings": {"listen_threads": 1}})
        assert answer.status == 200, answer
        return {name: wrk(f"https://127.0.0.1:{port}{path}", duration, connections, extra)
                for name, (path, extra) in LOADS.items()}
    finally:
        daemon.close()


def bench_nginx(directory, www, duration, connections):
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="canopy-bench-nginx-tls-"))
    (workdir / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
error_log {workdir}/error.log;
pid {workdir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    ssl_session_tickets off;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {directory}/cert.pem;
        ssl_certificate_key {directory}/key.pem;
        root {www};
        location = /return {{ return 200; }}
    }}
}}
""")
    server = subprocess.Popen([nginx_binary(), "-c", str(workdir / "nginx.conf"),
                               "-p", str(workdir)])
    try:
        wait_until(lambda: up(port))
        return {name: wrk(f"https://127.0.0.1:{port}{path}", duration, connections, extra)
                for name, (path, extra) in LOADS.items()}
    finally:
        server.terminate()
        server.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=positive, default=8)
    parser.add_argument("--connections", type=positive, default=50)
    parser.add_argument("--rounds", type=positive, default=3,
                        help="alternating rounds; medians are reported")
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--canopyd", default=str(root / "build" / "release" / "bin" / "canopyd"))
    arguments = parser.parse_args()
    if nginx_binary() is None:
        raise BenchError("nginx is missing: apt-get install nginx")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    directory = Path(tempfile.mkdtemp(prefix="canopy-bench-tls-"))
    www = make_material(directory)
    canopy_runs, nginx_runs = [], []
    for _ in range(arguments.rounds):
        canopy_runs.append(bench_canopy(arguments.canopyd, directory, www, arguments.duration,
                                        arguments.connections))
        time.sleep(1)
        nginx_runs.append(bench_nginx(directory, www, arguments.duration, arguments.connections))
        time.sleep(1)

    report = {"rounds": arguments.rounds, "loads": {}}
    for name in LOADS:
        row = {}
        for server, runs in (("canopy", canopy_runs), ("nginx", nginx_runs)):
            row[server] = {key: statistics.median(run[name][key] for run in runs)
                           for key in ("requests_per_second", "p99_ms")}
        row["ratio_rps_canopy_to_nginx"] = round(
            row["canopy"]["requests_per_second"] / row["nginx"]["requests_per_second"], 2)
        row["ratio_p99_canopy_to_nginx"] = round(
            row["canopy"]["p99_ms"] / max(row["nginx"]["p99_ms"], 0.001), 2)
        report["loads"][name] = row
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    try:
        main()
    except BenchError as failure:
        print(failure, file=sys.stderr)
        sys.exit(failure.code)
