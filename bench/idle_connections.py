#!/usr/bin/python3
"""Memory of idle connections: opens N keep-alive connections that send
nothing, and reports the server's resident memory per connection.

Measures canopyd's router and, when nginx is installed, nginx's worker in the
same run, each with one worker thread/process.

    bench/idle_connections.py [--connections 10000] [--canopyd build/release/bin/canopyd]
"""

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from canopy_daemon import Canopy, wait_until  # noqa: E402
from benchtools import free_port  # noqa: E402


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_idle(port, count):
    clients = []
    for _ in range(count):
        client = socket.socket()
        client.setblocking(True)
        client.connect(("127.0.0.1", port))
        clients.append(client)
    return clients


def measure(pid, port, count, accepted):
    before = rss_kib(pid)
    clients = open_idle(port, count)
    wait_until(accepted, timeout=60)
    time.sleep(0.5)
    after = rss_kib(pid)
    for client in clients:
        client.close()
    return before, after


def bench_canopy(binary, count):
    os.environ["CANOPYD"] = binary
    os.environ.setdefault("CANOPY_FIXTURE_GOOD_MODULES_DIR", tempfile.gettempdir())
    daemon = Canopy().start()
    try:
        port = free_port()
        answer = daemon.put("/config", {
            "listeners": {f"127.0.0.1:{port}": {"pass": "routes"}},
            "routes": [{"action": {"return": 200}}],
            "settings": {"listen_threads": 1, "http": {"idle_timeout": 600,
                                                       "header_read_timeout": 600}}})
        assert answer.status == 200, answer
        router = daemon.child("canopy: router")
        baseline = daemon.get("/status/connections/accepted").json

        def accepted():
            return daemon.get("/status/connections/accepted").json - baseline >= count
        return measure(router, port, count, accepted)
    finally:
        daemon.close()


def bench_nginx(count):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        return None
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="canopy-bench-nginx-"))
    (workdir / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
error_log {workdir}/error.log;
pid {workdir}/nginx.pid;
worker_rlimit_nofile {count + 1000};
events {{ worker_connections {count + 1000}; }}
http {{
    access_log off;
    client_header_timeout 600s;
    keepalive_timeout 600s;
    server {{ listen 127.0.0.1:{port}; location / {{ return 200; }} }}
}}
""")
    server = subprocess.Popen([nginx, "-c", str(workdir / "nginx.conf"), "-p", str(workdir)])
    try:
        def worker():
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        if b"nginx: worker" in (entry / "cmdline").read_bytes():
                            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                            if int(stat[1]) == server.pid:
                                return int(entry.name)
                    except OSError:
                        pass
            return None
        pid = wait_until(worker, timeout=10)
        wait_until(lambda: socket.create_connection(("127.0.0.1", port)).close() or True)

        def established():
            output = subprocess.run(["ss", "-Htn", "state", "established",
                                     f"( sport = :{port} )"], capture_output=True, text=True)
            return len(output.stdout.splitlines()) >= count
        return measure(pid, port, count, established)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10000)
    root = Path(__file__).resolve().parent.parent
    default = root / "build" / "release" / "bin" / "canopyd"
    if not default.exists():
        default = root / "build" / "dev" / "bin" / "canopyd"
    parser.add_argument("--canopyd", default=str(default))
    arguments = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    count = arguments.connections

    results = {"connections": count}
    before, after = bench_canopy(arguments.canopyd, count)
    results["canopy"] = {"rss_before_kib": before, "rss_after_kib": after,
                         "bytes_per_connection": round((after - before) * 1024 / count)}
    nginx = bench_nginx(count)
    if nginx:
        before, after = nginx
        results["nginx"] = {"rss_before_kib": before, "rss_after_kib": after,
                            "bytes_per_connection": round((after - before) * 1024 / count)}
        results["ratio_canopy_to_nginx"] = round(
            results["canopy"]["bytes_per_connection"] /
            max(1, results["nginx"]["bytes_per_connection"]), 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
