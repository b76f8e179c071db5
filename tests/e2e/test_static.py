"""Static files (`share`, config-schema §3.5) as real clients meet them.

One daemon serves every test of this file (a module fixture): a tree of
files under its private directory, readable by the router's user (nobody).
"""

import hashlib
import http.client
import os
import socket
import subprocess
from pathlib import Path

import pytest

from canopy_daemon import Canopy

SECRET = b"outside the share: never served\n"
BIG_SIZE = 20 * 1024 * 1024


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write(path, data, mode=0o644):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


def make_tree(root):
    """The files the tests ask for; directories 0755, files 0644."""
    www = root / "www"
    files = {
        "index.html": b"<h1>home</h1>\n",
        "hello.txt": b"0123456789abcdefghij",
        "style.css": b"body{}",
        "app.mjs": b"export default 1;",
        "image.png": b"\x89PNG fake",
        "font.woff2": b"wOF2",
        "readme": b"read me",
        "data.cnp": b"custom type",
        "empty.txt": b"",
        "dir/index.html": b"dir index\n",
        "dir/page.html": b"dir page\n",
        "emptydir/.keep": b"",
        "custom/home.htm": b"custom index\n",
        "second/only-second.txt": b"from the second path\n",
        "chroot/inside.txt": b"inside the chroot\n",
        "nosym/real.txt": b"real file\n",
        "mixed/a b.txt": b"space\n",
    }
    for name, data in files.items():
        write(www / name, data)
    write(root / "secret.txt", SECRET)
    write(www / "private.txt", b"root only", mode=0o600)
    # Symlinks: inside the share, out of the chroot (relative and absolute).
    os.symlink("inside.txt", www / "chroot" / "link-inside.txt")
    os.symlink("../../secret.txt", www / "chroot" / "escape.txt")
    os.symlink(str(root / "secret.txt"), www / "chroot" / "escape-absolute.txt")
    os.symlink("real.txt", www / "nosym" / "link.txt")
    os.mkfifo(www / "fifo")
    os.chmod(www / "fifo", 0o644)
    big = os.urandom(BIG_SIZE)
    write(www / "big.bin", big)
    for directory, _, _ in os.walk(root):
        os.chmod(directory, 0o755)
    return www, hashlib.sha256(big).hexdigest()


@pytest.fixture(scope="module")
def site():
    daemon = Canopy().start()
    try:
        www, big_digest = make_tree(daemon.dir)
        port = free_port()
        share = str(www) + "$uri"
        answer = daemon.put("/config", {
            "listeners": {f"127.0.0.1:{port}": {"pass": "routes/main"}},
            "routes": {
                "main": [
                    {"match": {"uri": "/chroot/*"},
                     "action": {"share": share, "chroot": str(www / "chroot")}},
                    {"match": {"uri": "/chroot-arg"},
                     "action": {"share": str(www / "chroot") + "/$arg_f",
                                "chroot": str(www / "chroot")}},
                    {"match": {"uri": "/outside"},
                     "action": {"share": str(www) + "/hello.txt", "chroot": str(www / "chroot")}},
                    {"match": {"uri": "/mount-closed"},
                     "action": {"share": "/proc/version", "traverse_mounts": False}},
                    {"match": {"uri": "/mount-open"}, "action": {"share": "/proc/version"}},
                    {"match": {"uri": "/mount-chroot"},
                     "action": {"share": str(www) + "/hello.txt", "chroot": str(www),
                                "follow_symlinks": False, "traverse_mounts": False}},
                    {"match": {"uri": "/nosym/*"},
                     "action": {"share": share, "follow_symlinks": False}},
                    {"match": {"uri": "/typed/*"},
                     "action": {"share": str(www) + "/${arg_f}", "types": ["image/*", "text/css"]}},
                    {"match": {"uri": "/custom/*"},
                     "action": {"share": share, "index": "home.htm"}},
                    {"match": {"uri": "/fallback-return/*"},
                     "action": {"share": str(www) + "/none$uri", "fallback": {"return": 299}}},
                    {"match": {"uri": "/fallback-pass/*"},
                     "action": {"share": str(www) + "/none$uri",
                                "fallback": {"pass": "routes/other"}}},
                    {"match": {"uri": "/two/*"},
                     "action": {"share": [str(www) + "/none$uri", str(www) + "/second/${arg_f}"],
                                "fallback": {"share": str(www) + "/hello.txt"}}},
                    {"match": {"uri": "/headers/*"},
                     "action": {"share": str(www) + "/hello.txt",
                                "response_headers": {"X-Static": "yes", "Cache-Control": "no-store"}}},
                    {"action": {"share": share}},
                ],
                "other": [{"action": {"return": 298}}],
            },
            "settings": {"http": {"static": {"mime_types": {
                "text/x-canopy": [".cnp", "README"],
                "application/x-font-woff2": ".woff2",
            }}}},
        })
        assert answer.status == 200, answer
        daemon.port = port
        daemon.www = www
        daemon.big_digest = big_digest
        yield daemon
    finally:
        daemon.close()


def request(site, path, method="GET", headers=None, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def raw(site, data):
    with socket.create_connection(("127.0.0.1", site.port), timeout=5) as client:
        client.sendall(data)
        chunks = []
        while True:
            chunk = client.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_files_with_their_types(site):
    cases = {
        "/hello.txt": (b"0123456789abcdefghij", "text/plain"),
        "/style.css": (b"body{}", "text/css"),
        "/app.mjs": (b"export default 1;", "text/javascript"),
        "/image.png": (b"\x89PNG fake", "image/png"),
        # settings.http.static.mime_types: new extension, whole name, override.
        "/data.cnp": (b"custom type", "text/x-canopy"),
        "/readme": (b"read me", "text/x-canopy"),
        "/font.woff2": (b"wOF2", "application/x-font-woff2"),
    }
    for path, (body, content_type) in cases.items():
        status, headers, got = request(site, path)
        assert (status, got) == (200, body), path
        assert headers["Content-Type"] == content_type, path
        assert headers["Content-Length"] == str(len(body))
        assert headers["Accept-Ranges"] == "bytes"
        stat = os.stat(site.www / path.lstrip("/"))
        assert headers["ETag"] == f'"{int(stat.st_mtime):x}-{stat.st_size:x}"'
        assert headers["Last-Modified"].endswith(" GMT")
    status, headers, got = request(site, "/empty.txt")
    assert (status, got, headers["Content-Length"]) == (200, b"", "0")
    status, headers, got = request(site, "/mixed/a%20b.txt")
    assert (status, got) == (200, b"space\n")


def test_index_and_directory_redirects(site):
    assert request(site, "/")[2] == b"<h1>home</h1>\n"
    status, headers, body = request(site, "/dir/")
    assert (status, body, headers["Content-Type"]) == (200, b"dir index\n", "text/html")
    status, headers, _ = request(site, "/dir?a=1&b=2")
    assert status == 301
    assert headers["Location"] == "/dir/?a=1&b=2"
    status, headers, _ = request(site, "/dir")
    assert (status, headers["Location"]) == (301, "/dir/")
    assert request(site, "/emptydir/")[0] == 404
    assert request(site, "/custom/")[2] == b"custom index\n"


def test_missing_unreadable_and_special_files(site):
    assert request(site, "/nothing.txt")[0] == 404
    assert request(site, "/dir/nothing/deeper")[0] == 404
    assert request(site, "/hello.txt/below")[0] == 404
    status, headers, body = request(site, "/private.txt")
    assert status == 403 and headers["Content-Type"] == "text/html"
    assert b"Error 403" in body
    assert request(site, "/fifo")[0] == 404


def test_only_get_and_head(site):
    status, headers, body = request(site, "/hello.txt", method="POST", body=b"x")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"
    assert request(site, "/hello.txt", method="DELETE")[0] == 405
    # A fallback takes the other methods.
    assert request(site, "/fallback-return/x", method="PUT", body=b"")[0] == 299
    status, headers, body = request(site, "/hello.txt", method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == "20"
    assert headers["Content-Type"] == "text/plain"


def test_types_paths_and_fallbacks(site):
    assert request(site, "/typed/x?f=image.png")[0] == 200
    assert request(site, "/typed/x?f=style.css")[0] == 200
    assert request(site, "/typed/x?f=hello.txt")[0] == 403
    assert request(site, "/typed/x?f=readme")[0] == 403
    # Paths in order, then the fallback (share, return, pass).
    assert request(site, "/two/x?f=only-second.txt")[2] == b"from the second path\n"
    assert request(site, "/two/x?f=missing")[2] == b"0123456789abcdefghij"
    assert request(site, "/fallback-return/x")[0] == 299
    assert request(site, "/fallback-pass/x")[0] == 298
    status, headers, _ = request(site, "/headers/x")
    assert (status, headers["X-Static"], headers["Cache-Control"]) == (200, "yes", "no-store")


def test_traversal_is_refused(site):
    for target in [b"/../secret.txt", b"/%2e%2e/secret.txt", b"/%2E%2E/%2e%2e/secret.txt",
                   b"/dir/../../secret.txt", b"/dir/%2e%2e/%2e%2e/secret.txt",
                   b"/..%2fsecret.txt", b"/%2e%2e%2fsecret.txt", b"/dir/..%2f..%2fsecret.txt"]:
        answer = raw(site, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status = int(answer.split(b" ", 2)[1])
        assert status in (400, 403, 404), (target, answer[:200])
        assert SECRET not in answer, target


def test_chroot_and_symlinks(site):
    assert request(site, "/chroot/inside.txt")[2] == b"inside the chroot\n"
    assert request(site, "/chroot/link-inside.txt")[2] == b"inside the chroot\n"
    for path in ["/chroot/escape.txt", "/chroot/escape-absolute.txt"]:
        status, _, body = request(site, path)
        assert status in (403, 404), path
        assert SECRET not in body
    # `..` from a variable stays inside the chroot.
    assert request(site, "/chroot-arg?f=inside.txt")[2] == b"inside the chroot\n"
    for value in ["../../secret.txt", "../hello.txt", "%2e%2e/%2e%2e/secret.txt"]:
        status, _, body = request(site, "/chroot-arg?f=" + value)
        assert status in (403, 404), value
        assert SECRET not in body
    # A share path outside the chroot: 403.
    assert request(site, "/outside")[0] == 403
    assert request(site, "/nosym/real.txt")[0] == 200
    assert request(site, "/nosym/link.txt")[0] == 403


def test_mount_points(site):
    # /proc is a mount of its own: crossing it is refused when asked.
    assert request(site, "/mount-open")[0] == 200
    assert request(site, "/mount-closed")[0] == 403
    # Within a chroot the limits cover only the part after it.
    assert request(site, "/mount-chroot")[2] == b"0123456789abcdefghij"


def test_conditional_requests(site):
    status, headers, _ = request(site, "/hello.txt")
    etag, modified = headers["ETag"], headers["Last-Modified"]
    for conditional in [{"If-None-Match": etag}, {"If-None-Match": f'"x", W/{etag}'},
                        {"If-None-Match": "*"}, {"If-Modified-Since": modified}]:
        status, headers, body = request(site, "/hello.txt", headers=conditional)
        assert (status, body) == (304, b""), conditional
        assert headers["ETag"] == etag
        assert "Content-Length" not in headers
    assert request(site, "/hello.txt", headers={"If-None-Match": '"other"'})[0] == 200
    assert request(site, "/hello.txt",
                   headers={"If-Modified-Since": "Thu, 01 Jan 1970 00:00:01 GMT"})[0] == 200
    # If-None-Match decides when both are present.
    assert request(site, "/hello.txt", headers={"If-None-Match": '"other"',
                                                "If-Modified-Since": modified})[0] == 200
    assert request(site, "/hello.txt", method="HEAD", headers={"If-None-Match": etag})[0] == 304


def test_ranges(site):
    def ranged(value, extra=None):
        return request(site, "/hello.txt", headers={"Range": value, **(extra or {})})

    for value, body, content_range in [
            ("bytes=0-3", b"0123", "bytes 0-3/20"),
            ("bytes=5-", b"56789abcdefghij", "bytes 5-19/20"),
            ("bytes=-3", b"hij", "bytes 17-19/20"),
            ("bytes=18-100", b"ij", "bytes 18-19/20"),
            ("bytes=-100", b"0123456789abcdefghij", "bytes 0-19/20"),
            ("bytes=0-1,2-3", b"0123", "bytes 0-3/20")]:
        status, headers, got = ranged(value)
        assert (status, got) == (206, body), value
        assert headers["Content-Range"] == content_range, value
        assert headers["Content-Type"] == "text/plain"
    for value in ["bytes=-0", "bytes=20-", "bytes=30-40"]:
        status, headers, body = ranged(value)
        assert status == 416, value
        assert headers["Content-Range"] == "bytes */20"
    assert request(site, "/empty.txt", headers={"Range": "bytes=0-"})[0] == 416
    # Ignored: bad syntax, another unit, a stale If-Range.
    for value, extra in [("bytes=5-1", None), ("items=0-1", None), ("bytes=x", None),
                         ("bytes=0-1", {"If-Range": '"stale"'}),
                         ("bytes=0-1", {"If-Range": "Thu, 01 Jan 1970 00:00:01 GMT"})]:
        status, _, body = ranged(value, extra)
        assert (status, body) == (200, b"0123456789abcdefghij"), value
    etag = request(site, "/hello.txt")[1]["ETag"]
    assert ranged("bytes=0-1", {"If-Range": etag})[0] == 206


def test_multipart_byteranges(site):
    status, headers, body = request(site, "/hello.txt", headers={"Range": "bytes=10-11, 0-1"})
    assert status == 206
    content_type = headers["Content-Type"]
    assert content_type.startswith("multipart/byteranges; boundary=")
    boundary = content_type.split("boundary=")[1].encode()
    assert int(headers["Content-Length"]) == len(body)
    parts = body.split(b"--" + boundary)
    assert parts[0] == b"\r\n" and parts[-1] == b"--\r\n"
    found = []
    for part in parts[1:-1]:
        head, _, data = part.partition(b"\r\n\r\n")
        assert b"Content-Type: text/plain" in head
        found.append((head.split(b"Content-Range: ")[1].strip(), data[:-2]))
        assert data.endswith(b"\r\n")
    assert found == [(b"bytes 0-1/20", b"01"), (b"bytes 10-11/20", b"ab")]
    # curl reads the same answer.
    output = subprocess.run(["curl", "-s", "-r", "0-0,19-19",
                             f"http://127.0.0.1:{site.port}/hello.txt"],
                            capture_output=True, timeout=10).stdout
    assert b"Content-Range: bytes 0-0/20\r\n\r\n0\r\n" in output
    assert b"Content-Range: bytes 19-19/20\r\n\r\nj\r\n" in output


def router_rss_kib(site):
    pid = site.child("canopy: router")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_big_file_byte_exact_with_low_memory(site):
    before = router_rss_kib(site)
    connection = http.client.HTTPConnection("127.0.0.1", site.port, timeout=30)
    digest = hashlib.sha256()
    peak = before
    try:
        connection.request("GET", "/big.bin")
        response = connection.getresponse()
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert int(response.headers["Content-Length"]) == BIG_SIZE
        received = 0
        while True:
            # A slow reader: the router must wait for the socket, not buffer.
            chunk = response.read(1024 * 1024)
            if not chunk:
                break
            received += len(chunk)
            digest.update(chunk)
            peak = max(peak, router_rss_kib(site))
    finally:
        connection.close()
    assert received == BIG_SIZE
    assert digest.hexdigest() == site.big_digest
    assert peak - before < 4 * 1024, (before, peak)
    # curl, and a range in the middle of the big file.
    output = subprocess.run(["curl", "-s", f"http://127.0.0.1:{site.port}/big.bin"],
                            capture_output=True, timeout=30).stdout
    assert hashlib.sha256(output).hexdigest() == site.big_digest
    status, headers, body = request(site, "/big.bin",
                                    headers={"Range": "bytes=10485760-10485859"})
    assert status == 206 and len(body) == 100
    with open(site.www / "big.bin", "rb") as big:
        big.seek(10485760)
        assert body == big.read(100)


def test_keep_alive_and_pipelining(site):
    requests = (b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                b"HEAD /style.css HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /dir HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-4\r\n\r\n"
                b"GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = raw(site, requests)
    assert answer.count(b"HTTP/1.1 ") == 5
    assert answer.index(b"0123456789abcdefghij") < answer.index(b"301 Moved")
    assert answer.endswith(b"body{}")
    # A file after a request body that was read past.
    answer = raw(site, b"POST /fallback-return/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                       b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"HTTP/1.1 299" in answer and answer.endswith(b"0123456789abcdefghij")


def test_a_client_that_leaves_mid_file_does_not_hurt(site):
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", site.port), timeout=5) as client:
            client.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            client.recv(65536)
    assert request(site, "/hello.txt")[0] == 200
