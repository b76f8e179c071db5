"""TLS listeners with real clients: curl, Python's ssl and http.client,
openssl s_client and python3-websockets.

The keys and certificates are made here with the openssl command: a small
CA, "one" for one.example and "two" for two.example and *.two.example.
Both are uploaded through the control socket and served by one listener,
which picks the certificate by the name the client asks for (SNI).
"""

import asyncio
import base64
import hashlib
import http.client
import json
import os
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from canopy_daemon import wait_until

HELLO = os.environ.get("CANOPY_HELLO_CPP")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def openssl(*args, **kwargs):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30,
                          **kwargs)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA and two leaf certificates signed by it, as PEM bundles."""
    directory = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30"]
    openssl("req", "-x509", *ec, "-subj", "/CN=Canopy Test CA", "-keyout",
            str(directory / "ca.key"), "-out", str(directory / "ca.crt"))
    bundles = {}
    for name, alt_names in (("one", "DNS:one.example"),
                            ("two", "DNS:two.example,DNS:*.two.example")):
        key, cert = directory / f"{name}.key", directory / f"{name}.crt"
        openssl("req", "-x509", *ec, "-subj", f"/CN={name}.example",
                "-addext", f"subjectAltName={alt_names}",
                "-CA", str(directory / "ca.crt"), "-CAkey", str(directory / "ca.key"),
                "-keyout", str(key), "-out", str(cert))
        bundles[name] = cert.read_text() + (directory / "ca.crt").read_text() + key.read_text()
    return {"dir": directory, "ca": str(directory / "ca.crt"), "bundles": bundles}


@pytest.fixture
def tls_canopy(canopy, pki):
    for name, bundle in pki["bundles"].items():
        answer = canopy.put(f"/certificates/{name}", bundle)
        assert answer.status == 200, answer
    return canopy


def share_dir(canopy):
    """A directory the router (an unprivileged user) can read."""
    directory = canopy.dir / "www"
    directory.mkdir(mode=0o755, exist_ok=True)
    return directory


def configure(canopy, tree, expect=200):
    answer = canopy.put("/config", tree)
    assert answer.status == expect, f"{answer}\n{canopy.log()}"
    return answer


def tls_listener(port, **tls):
    tls.setdefault("certificate", ["one", "two"])
    return {f"127.0.0.1:{port}": {"pass": "routes", "tls": tls}}


def client_context(pki, **settings):
    context = ssl.create_default_context(cafile=pki["ca"])
    for key, value in settings.items():
        setattr(context, key, value)
    return context


def peer_common_name(port, context, server_name):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as secure:
            subject = dict(item[0] for item in secure.getpeercert()["subject"])
            return subject["commonName"]


def https_get(port, pki, path, host="one.example", context=None):
    connection = http.client.HTTPSConnection(host, port, timeout=30,
                                             context=context or client_context(pki))
    # http.client resolves the name itself: connect by address, verify by name.
    connection.sock = (context or client_context(pki)).wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=30), server_hostname=host)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def curl(port, pki, host, path, *extra):
    result = subprocess.run(
        ["curl", "-sS", "--resolve", f"{host}:{port}:127.0.0.1", "--cacert", pki["ca"],
         "-o", "-", "-w", "\n%{http_code}", *extra, f"https://{host}:{port}{path}"],
        capture_output=True, text=True, timeout=30)
    body, _, status = result.stdout.rpartition("\n")
    return int(status or 0), body, result.stderr


def read_to_the_end(connection):
    """What the server sends until it closes (a reset counts as closing)."""
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def s_client(port, *extra, request=True, name="one.example"):
    """openssl s_client with an HTTP request on stdin; returns its output."""
    stdin = f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode()
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name,
         "-ign_eof", *extra], input=stdin if request else b"", capture_output=True, timeout=30)
    return result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")


def test_sni_picks_the_certificate_and_routes_see_https(tls_canopy, pki):
    port, plain_port = free_port(), free_port()
    tmp_path = share_dir(tls_canopy)
    (tmp_path / "index.txt").write_text("served over TLS\n")
    routes = [{"match": {"scheme": "https"}, "action": {"share": f"{tmp_path}$uri"}},
              {"action": {"return": 418}}]
    listeners = tls_listener(port)
    listeners[f"127.0.0.1:{plain_port}"] = {"pass": "routes"}
    configure(tls_canopy, {"listeners": listeners, "routes": routes})

    context = client_context(pki)
    assert peer_common_name(port, context, "one.example") == "one.example"
    assert peer_common_name(port, context, "two.example") == "two.example"
    assert peer_common_name(port, context, "a.two.example") == "two.example"
    # A name no certificate has, and no name at all: the first certificate.
    lenient = client_context(pki, check_hostname=False)
    assert peer_common_name(port, lenient, "other.example") == "one.example"
    assert peer_common_name(port, lenient, None) == "one.example"

    for host in ("one.example", "two.example", "www.two.example"):
        status, body, errors = curl(port, pki, host, "/index.txt")
        assert (status, body) == (200, "served over TLS\n"), errors
    # The same routes on a plain listener: scheme "http" does not match.
    with socket.create_connection(("127.0.0.1", plain_port), timeout=10) as client:
        client.sendall(b"GET /index.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert client.recv(100).startswith(b"HTTP/1.1 418")
    # curl refuses a certificate whose names do not match: the wrong one
    # was never offered.
    status, _, errors = curl(port, pki, "other.example", "/index.txt")
    assert status == 0 and "other.example" in errors, errors


def test_keep_alive_and_a_large_file_byte_exact(tls_canopy, pki):
    port = free_port()
    tmp_path = share_dir(tls_canopy)
    content = os.urandom(20 * 1024 * 1024)
    (tmp_path / "large.bin").write_bytes(content)
    (tmp_path / "small.txt").write_text("small\n")
    configure(tls_canopy, {"listeners": tls_listener(port),
                           "routes": [{"action": {"share": f"{tmp_path}$uri"}}]})

    context = client_context(pki)
    connection = http.client.HTTPSConnection("one.example", port, timeout=60, context=context)
    connection.sock = context.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=60), server_hostname="one.example")
    first_socket = connection.sock
    try:
        for path, expected in (("/small.txt", b"small\n"), ("/large.bin", content),
                               ("/small.txt", b"small\n"), ("/missing", None)):
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            if expected is None:
                assert response.status == 404
            else:
                assert response.status == 200
                assert hashlib.sha256(body).digest() == hashlib.sha256(expected).digest()
        assert connection.sock is first_socket  # every request on one TLS connection
        # A range of the large file, over the same connection.
        connection.request("GET", "/large.bin", headers={"Range": "bytes=1000-1999"})
        response = connection.getresponse()
        assert response.status == 206
        assert response.read() == content[1000:2000]
    finally:
        connection.close()


def test_session_cache_and_tickets(tls_canopy, pki, tmp_path):
    port = free_port()
    session = str(tmp_path / "session.pem")
    routes = [{"action": {"return": 204}}]

    def resumed(**tls):
        configure(tls_canopy, {"listeners": tls_listener(port, **tls), "routes": routes})
        first = s_client(port, "-sess_out", session)
        assert "New, TLSv1.3" in first, first
        return "Reused, TLSv1.3" in s_client(port, "-sess_in", session)

    assert not resumed()  # the default: no cache, no tickets
    assert not resumed(session={"cache_size": 0, "tickets": False})
    assert resumed(session={"cache_size": 100, "tickets": False})
    assert resumed(session={"tickets": True})
    # A session made with the second certificate (chosen by SNI) resumes
    # too: cache and tickets are the listener's, whatever the certificate.
    for session_settings in ({"cache_size": 100}, {"tickets": True}):
        configure(tls_canopy, {"listeners": tls_listener(port, session=session_settings),
                               "routes": routes})
        s_client(port, "-sess_out", session, name="two.example")
        assert "Reused, TLSv1.3" in s_client(port, "-sess_in", session, name="two.example")
    # session.timeout: a session of the cache, then of a ticket, stops
    # resuming once its second is over (polled; with the default, 300 s, it
    # would resume for the whole poll). Resuming at first is shown above.
    for session_settings in ({"cache_size": 100, "timeout": 1}, {"tickets": True, "timeout": 1}):
        resumed(session=session_settings)
        assert wait_until(lambda: "Reused" not in s_client(port, "-sess_in", session),
                          timeout=15, interval=0.2)
    # TLS 1.2 too: a session id from the cache, then a ticket.
    configure(tls_canopy, {"listeners": tls_listener(port, session={"cache_size": 10}),
                           "routes": routes})
    s_client(port, "-tls1_2", "-sess_out", session)
    assert "Reused, TLSv1.2" in s_client(port, "-tls1_2", "-sess_in", session)

    # Own ticket keys outlive a reconfiguration; the array's last key
    # issues tickets and every key decrypts, so rotation keeps sessions.
    old_key = base64.b64encode(os.urandom(48)).decode()
    new_key = base64.b64encode(os.urandom(80)).decode()
    configure(tls_canopy, {"listeners": tls_listener(port, session={"tickets": old_key}),
                           "routes": routes})
    s_client(port, "-sess_out", session)
    configure(tls_canopy, {"listeners": tls_listener(port, session={"tickets": [old_key, new_key]}),
                           "routes": routes})
    assert "Reused, TLSv1.3" in s_client(port, "-sess_in", session)
    s_client(port, "-sess_out", session)  # a ticket under the new key
    configure(tls_canopy, {"listeners": tls_listener(port, session={"tickets": [new_key]}),
                           "routes": routes})
    assert "Reused, TLSv1.3" in s_client(port, "-sess_in", session)
    configure(tls_canopy, {"listeners": tls_listener(port, session={"tickets": [old_key]}),
                           "routes": routes})
    assert "Reused" not in s_client(port, "-sess_in", session)


def test_conf_commands(tls_canopy, pki):
    port = free_port()
    routes = [{"action": {"return": 204}}]
    configure(tls_canopy, {"listeners": tls_listener(
        port, conf_commands={"protocol": "-all, TLSv1.3",
                             "ciphersuites": "TLS_CHACHA20_POLY1305_SHA256"}),
        "routes": routes})
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with client_context(pki).wrap_socket(raw, server_hostname="one.example") as secure:
            assert secure.version() == "TLSv1.3"
            assert secure.cipher()[0] == "TLS_CHACHA20_POLY1305_SHA256"
    tls12 = client_context(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError):
        peer_common_name(port, tls12, "one.example")
    assert "Cipher is (NONE)" in s_client(port, "-tls1_2", request=False)
    assert wait_until(lambda: "TLS handshake with 127.0.0.1 failed: unsupported protocol"
                      in tls_canopy.log()), tls_canopy.log()

    configure(tls_canopy, {"listeners": tls_listener(
        port, conf_commands={"cipherstring": "ECDHE-ECDSA-AES128-GCM-SHA256",
                             "maxprotocol": "TLSv1.2"}), "routes": routes})
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with client_context(pki).wrap_socket(raw, server_hostname="one.example") as secure:
            assert (secure.version(), secure.cipher()[0]) == ("TLSv1.2",
                                                              "ECDHE-ECDSA-AES128-GCM-SHA256")

    # A command or value OpenSSL refuses: the change is refused with its
    # reason, and the listener keeps serving the previous configuration.
    unknown = configure(tls_canopy, {"listeners": tls_listener(
        port, conf_commands={"no_such_command": "x"}), "routes": routes}, expect=500)
    assert "no_such_command" in unknown.json["detail"], unknown
    bad_value = configure(tls_canopy, {"listeners": tls_listener(
        port, conf_commands={"cipherstring": "NO-SUCH-CIPHER"}), "routes": routes}, expect=500)
    assert "cipherstring" in bad_value.json["detail"], bad_value
    assert "no cipher match" in bad_value.json["detail"], bad_value
    assert peer_common_name(port, client_context(pki), "two.example") == "two.example"


def test_a_bad_client_disturbs_nobody(tls_canopy, pki):
    port = free_port()
    configure(tls_canopy, {"listeners": tls_listener(port),
                           "routes": [{"action": {"return": 204}}],
                           "settings": {"http": {"header_read_timeout": 1}}})
    context = client_context(pki)
    good = http.client.HTTPSConnection("one.example", port, timeout=10, context=context)
    good.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                    server_hostname="one.example")
    try:
        good.request("GET", "/")
        assert good.getresponse().read() == b""

        # Plain HTTP, then random bytes, on the TLS port: each is refused
        # on its own connection and logged with OpenSSL's reason.
        for garbage in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096)):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as bad:
                bad.sendall(garbage)
                assert b"HTTP/1.1" not in read_to_the_end(bad)
        assert wait_until(lambda: "failed: http request" in tls_canopy.log()), tls_canopy.log()
        # A client that connects and never says hello is dropped after the
        # handshake timeout (header_read_timeout).
        with socket.create_connection(("127.0.0.1", port), timeout=10) as silent:
            assert read_to_the_end(silent) == b""
        assert wait_until(lambda: "timed out" in tls_canopy.log()), tls_canopy.log()

        good.request("GET", "/")
        response = good.getresponse()
        assert response.status == 204
        response.read()
    finally:
        good.close()


@pytest.mark.skipif(not HELLO, reason="the external C++ example was not built")
def test_application_and_websocket_over_tls(tls_canopy, pki):
    import websockets  # python3-websockets (Debian 12: 10.4)

    port = free_port()
    configure(tls_canopy, {"listeners": tls_listener(port),
                           "routes": [{"action": {"pass": "applications/hello"}}],
                           "applications": {"hello": {"type": "external",
                                                      "executable": HELLO}}})
    status, _, body = https_get(port, pki, "/headers")
    assert status == 200
    assert b"tls: yes" in body, body

    # A body streamed to the app and back, through TLS both ways.
    context = client_context(pki)
    payload = os.urandom(3 * 1024 * 1024 + 17)
    connection = http.client.HTTPSConnection("one.example", port, timeout=30, context=context)
    connection.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                                          server_hostname="one.example")
    try:
        connection.request("POST", "/echo", body=payload)
        response = connection.getresponse()
        assert response.status == 200
        assert response.read() == payload
        connection.request("GET", "/headers")  # the same connection goes on
        assert b"tls: yes" in connection.getresponse().read()
    finally:
        connection.close()

    async def talk():
        async with websockets.connect(f"wss://one.example:{port}/ws", ssl=client_context(pki),
                                      host="127.0.0.1", port=port,
                                      server_hostname="one.example",
                                      max_size=None) as connection:
            await connection.send("hello over TLS")
            assert await asyncio.wait_for(connection.recv(), 10) == "hello over TLS"
            large = os.urandom(300000)
            await connection.send(large)
            assert await asyncio.wait_for(connection.recv(), 10) == large
            await asyncio.wait_for(await connection.ping(b"ping"), 10)
            await connection.close(code=1000)
            assert connection.close_code == 1000

    asyncio.run(talk())


def test_a_reconfiguration_leaves_connections_in_flight_their_tls(tls_canopy, pki):
    port = free_port()
    routes = [{"action": {"return": 204}}]
    configure(tls_canopy, {"listeners": tls_listener(port, certificate="one"), "routes": routes})
    context = client_context(pki, check_hostname=False)
    kept = http.client.HTTPSConnection("one.example", port, timeout=10, context=context)
    kept.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                    server_hostname="one.example")
    try:
        kept.request("GET", "/")
        kept.getresponse().read()
        configure(tls_canopy, {"listeners": tls_listener(port, certificate="two"),
                               "routes": routes})
        assert peer_common_name(port, context, "one.example") == "two.example"
        kept.request("GET", "/")  # the old connection goes on with its session
        assert kept.getresponse().status == 204
        subject = dict(item[0] for item in kept.sock.getpeercert()["subject"])
        assert subject["commonName"] == "one.example"
    finally:
        kept.close()


def test_a_certificate_in_use_cannot_be_deleted(tls_canopy, pki):
    port = free_port()
    configure(tls_canopy, {"listeners": tls_listener(port, certificate="two"),
                           "routes": [{"action": {"return": 204}}]})
    refused = tls_canopy.delete("/certificates/two")
    assert refused.status == 400
    assert refused.json["error"] == "Certificate is used in the configuration."
    assert "two" in tls_canopy.get("/certificates").json

    # The stored configuration comes back after a restart: the new router
    # gets the bundle from main again.
    tls_canopy.restart()
    assert peer_common_name(port, client_context(pki), "two.example") == "two.example"

    configure(tls_canopy, {"listeners": {f"127.0.0.1:{port}": {"pass": "routes"}},
                           "routes": [{"action": {"return": 204}}]})
    assert tls_canopy.delete("/certificates/two").status == 200
    missing = tls_canopy.put("/config/listeners", tls_listener(port, certificate="two"))
    assert missing.status == 400
    assert missing.json["detail"] == 'Certificate "two" is not found.'


PYTHON_MODULES = os.environ.get("CANOPY_PYTHON_MODULES_DIR")


@pytest.mark.skipif(not PYTHON_MODULES or not list(Path(PYTHON_MODULES).glob("python*.canopy.so")),
                    reason="the python module was not built")
def test_asgi_sees_https_and_a_close_notify_is_a_disconnect(make_canopy, pki):
    canopy = make_canopy(modules_dir=PYTHON_MODULES).start()
    for name, bundle in pki["bundles"].items():
        assert canopy.put(f"/certificates/{name}", bundle).status == 200
    events = canopy.dir / "events"
    events.touch()
    events.chmod(0o666)  # the app runs as nobody
    port = free_port()
    apps = str(Path(__file__).resolve().parent / "python_apps")
    configure(canopy, {"listeners": tls_listener(port),
                       "routes": [{"action": {"pass": "applications/asgi"}}],
                       "applications": {"asgi": {
                           "type": "python 3.11", "path": apps, "module": "asgi_apps",
                           "environment": {"ASGI_EVENTS": str(events)}}}})
    status, _, body = https_get(port, pki, "/scope")
    assert status == 200
    assert json.loads(body)["scheme"] == "https"

    # The client ends its TLS session properly (close_notify) while the app
    # waits: that is the client leaving, not the start of a next request.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        secure = client_context(pki).wrap_socket(raw, server_hostname="one.example")
        secure.sendall(b"GET /long-poll?tls HTTP/1.1\r\nHost: one.example\r\n\r\n")
        assert wait_until(lambda: "waiting tls" in events.read_text()), events.read_text()
        secure.unwrap()
    assert wait_until(lambda: "http.disconnect tls" in events.read_text()), events.read_text()
