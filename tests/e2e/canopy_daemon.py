"""Runs the real canopyd for a test and talks to its control socket."""

import atexit
import http.client
import json
import os
import re
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path


def wait_until(condition, timeout=10.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            return result
        time.sleep(interval)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"Answer({self.status}, {self.body!r})"


# Daemons started and not stopped yet. A fixture whose set-up fails after
# start() never reaches its close(); whatever is left is stopped when the
# test run ends, so no daemon outlives the run that started it.
_running = set()


def _stop_leftover_daemons():
    for daemon in list(_running):
        daemon.close()


atexit.register(_stop_leftover_daemons)


class Canopy:
    """One canopyd in the foreground, in a private temporary directory."""

    def __init__(self, modules_dir=None, extra_args=(), workdir=None):
        self.binary = os.environ["CANOPYD"]
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="canopy-e2e-")
            workdir = self._tmp.name
        self.dir = Path(workdir)
        # Unprivileged children (user nobody) must reach their files.
        os.chmod(self.dir, 0o755)
        self.control = self.dir / "control.sock"
        self.pid_file = self.dir / "canopy.pid"
        self.log_file = self.dir / "canopy.log"
        self.state_dir = self.dir / "state"
        self.modules_dir = Path(modules_dir or os.environ["CANOPY_FIXTURE_GOOD_MODULES_DIR"])
        self.extra_args = list(extra_args)
        self.process = None

    def arguments(self):
        return [self.binary, "--no-daemon",
                "--control", f"unix:{self.control}",
                "--pid", str(self.pid_file),
                "--log", str(self.log_file),
                "--statedir", str(self.state_dir),
                "--tmpdir", str(self.dir),
                "--modulesdir", str(self.modules_dir)] + self.extra_args

    def start(self):
        self.process = subprocess.Popen(self.arguments(), stdin=subprocess.DEVNULL)
        _running.add(self)
        ready = wait_until(lambda: self.control.exists() and self._answers(), timeout=15)
        assert ready, f"canopyd did not come up:\n{self.log()}"
        return self

    def _answers(self):
        try:
            return self.get("/config").status == 200
        except OSError:
            return False

    def stop(self, sig=signal.SIGTERM):
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=15)
        self.process = None
        _running.discard(self)
        return code

    def restart(self):
        self.stop()
        return self.start()

    def close(self):
        try:
            self.stop()
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()

    def log(self):
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def children(self):
        """pid -> title of main's live children."""
        found = {}
        main = self.process.pid
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) != main or fields[0] in ("Z", "X"):
                    continue
                title = (entry / "cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ")
                found[int(entry.name)] = title.decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue
        return found

    def child(self, title):
        for pid, child_title in self.children().items():
            if child_title == title:
                return pid
        return None

    def request(self, method, path, body=None, headers=None):
        connection = UnixHTTPConnection(str(self.control))
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            if isinstance(body, str):
                body = body.encode()
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Answer(response.status, dict(response.getheaders()), response.read().decode())
        finally:
            connection.close()

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def put(self, path, body, **kwargs):
        return self.request("PUT", path, body, **kwargs)

    def post(self, path, body, **kwargs):
        return self.request("POST", path, body, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def curl(self, *args):
        """Runs curl against the control socket, as a user would; returns (status, body)."""
        command = ["curl", "-s", "-w", "\n%{http_code}", "--unix-socket", str(self.control),
                   *args]
        output = subprocess.run(command, capture_output=True, text=True, timeout=30).stdout
        body, _, status = output.rpartition("\n")
        return int(status), body


def socket_mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# ---- processes, for application tests ----

def _stat_fields(pid):
    """/proc/<pid>/stat after the command name: state, ppid, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def processes_titled(title):
    """pids of live processes whose title is `title`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ")
            state = _stat_fields(entry.name)[0]
        except (OSError, IndexError):
            continue
        if raw.decode(errors="replace") == title and state not in ("Z", "X"):
            found.append(int(entry.name))
    return sorted(found)


def parent_of(pid):
    try:
        return int(_stat_fields(pid)[1])
    except (OSError, IndexError, ValueError):
        return None


def application_processes(name):
    """The live processes of application `name`: an external program replaces
    its title when it starts, so they are found as its prototypes' children."""
    prototypes = set(processes_titled(f'canopy: "{name}" prototype'))
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat_fields(entry.name)
        except (OSError, IndexError):
            continue
        if int(fields[1]) in prototypes and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return sorted(found)


def rss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakRss:
    """Samples the resident memory of named pids while the block runs:
    `with PeakRss(router=pid, app=pid) as peaks: ...`, then peaks["router"]."""

    def __init__(self, interval=0.01, **pids):
        self.pids = pids
        self.interval = interval
        self.peaks = {name: 0 for name in pids}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch)

    def _watch(self):
        while not self._done.is_set():
            for name, pid in self.pids.items():
                self.peaks[name] = max(self.peaks[name], rss_kib(pid))
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self.peaks

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()


def stream_through(port, path, size):
    """POSTs `size` bytes with a Content-Length on a raw socket while a
    reader thread takes the answer as it comes (framed by Content-Length or
    chunked); returns {"head", "count": body bytes, "complete"}."""
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n"
                   "Connection: close\r\n\r\n".encode())
    block = bytes(range(256)) * 256
    result = {"count": 0, "complete": False}

    def reader():
        received = b""
        while b"\r\n\r\n" not in received:
            data = client.recv(65536)
            if not data:
                return
            received += data
        head, _, pending = received.partition(b"\r\n\r\n")
        result["head"] = head
        if b"transfer-encoding: chunked" not in head.lower():
            count = len(pending)
            while data := client.recv(1 << 20):
                count += len(data)
            result["count"] = count
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            result["complete"] = length is not None and int(length[1]) == count
            return
        # De-chunk as the bytes come, keeping only the unparsed tail.
        offset, count = 0, 0
        while True:
            line_end = pending.find(b"\r\n", offset)
            if line_end >= 0:
                length = int(pending[offset:line_end].split(b";")[0], 16)
                if length == 0:
                    result["complete"] = True
                    break
                if len(pending) >= line_end + 2 + length + 2:
                    count += length
                    offset = line_end + 2 + length + 2
                    continue
            data = client.recv(1 << 20)
            if not data:
                break
            pending = pending[offset:] + data
            offset = 0
        result["count"] = count

    thread = threading.Thread(target=reader)
    thread.start()
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        client.sendall(piece)
        sent += len(piece)
    thread.join(timeout=120)
    client.close()
    return result
