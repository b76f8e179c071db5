"""What every benchmark script here shares: wrk and its report, a free
loopback port, nginx's binary, the build to take canopyd from, argument
checks, the errors that end a run with advice, and the CPU time and memory
of a server's process tree from /proc."""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from canopy_daemon import Canopy  # noqa: E402
EXIT_FAILED, EXIT_REFUSED = 1, 3
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A step that failed, with what to do about it; exit code 1."""
    code = EXIT_FAILED


class ConfigurationRefused(BenchError):
    """canopyd answered the application's configuration with an error."""
    code = EXIT_REFUSED


def require_canopyd(path, targets="canopyd"):
    if not os.access(path, os.X_OK):
        raise BenchError(f"no canopyd at {path}: build it (cmake --preset release && cmake "
                         f"--build build/release --target {targets}) or pass --canopyd")


def require_wrk():
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed: apt-get install wrk")


def require_nginx(alternative=""):
    if nginx_binary() is None:
        raise BenchError(f"nginx is not installed: apt-get install nginx{alternative}")


def start_canopy(canopyd, modules=None):
    """canopyd started by the end-to-end tests' harness, with the modules
    from `modules` (default: the build's modules/ beside bin/, or none)."""
    os.environ["CANOPYD"] = str(canopyd)
    modules = Path(modules) if modules is not None else Path(canopyd).parent.parent / "modules"
    daemon = Canopy(modules_dir=modules if modules.is_dir() else tempfile.gettempdir())
    try:
        daemon.start()
    except AssertionError as error:
        raise BenchError(f"canopyd did not start: {error}") from None
    return daemon


def default_build():
    release = ROOT / "build" / "release"
    return release if (release / "bin" / "canopyd").exists() else ROOT / "build" / "dev"


def fetch(port, path="/"):
    """(status, text) of a GET on loopback; (None, None) when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except OSError:
        return None, None


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


# ---- a server's processes, from /proc -------------------------------------------

def process_tree(root):
    """`root` and all its live descendants."""
    children = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X"):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        if Path(f"/proc/{pid}").exists():
            found.append(pid)
            pending.extend(children.get(pid, []))
    return sorted(found)


def cpu_ticks(pid):
    """utime + stime of one process, in clock ticks; None once it is gone.
    After the command's closing parenthesis, state is field 3 of stat(5),
    utime 14 and stime 15."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pids):
    """utime + stime of the processes, in seconds (those gone are skipped)."""
    return sum(ticks for ticks in map(cpu_ticks, pids) if ticks is not None) / CLOCK_TICKS


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total
