"""What every benchmark script here shares: wrk and its report, a free
loopback port, nginx's binary, argument checks and the error that ends a
run with advice."""

import argparse
import os
import re
import shutil
import socket
import subprocess

EXIT_FAILED = 1


class BenchError(Exception):
    """A step that failed, with what to do about it; exit code 1."""
    code = EXIT_FAILED


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def nginx_binary():
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def wrk(url, duration, connections):
    """One wrk run (one thread) against `url`: requests/s and p99."""
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def parse_wrk(output):
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output)
    if rps is None or p99 is None:
        raise BenchError(f"cannot read wrk's output:\n{output}")
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if errors:
        raise BenchError(f"{errors.group(1)} answers were not 2xx or 3xx: a benchmark of "
                         f"errors means nothing. wrk said:\n{output}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return {"requests_per_second": float(rps.group(1)),
            "p99_ms": round(float(p99.group(1)) * scale, 3)}
