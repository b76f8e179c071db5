"""Runs the real canopyd for a test and talks to its control socket."""

import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import tempfile
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
