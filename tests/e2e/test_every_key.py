"""Every key of the configuration schema through the real control socket.

The validator accepts a configuration that uses every key this build
supports (shown with ?dry_run=1, which changes nothing), and refuses each key
of a feature this build lacks, saying so.

Keys that need a feature this build lacks (validationContextFor in
core/controller/control_api.cpp turns them off), each checked below:
  applications.*.isolation               namespaces, rootfs, cgroups
  settings.http.compression              compressors
  settings.js_module                     njs
  settings.telemetry                     OpenTelemetry

TLS keys name a certificate, so the tests that use them upload one first.

The application types are those of the fixture modules the daemon runs with:
"alpha" 1.0 (schema {}: any key) and "beta" 2.3.1 (script, threads).
"""

import copy
import subprocess

import pytest

DRY_RUN_OK = {"success": "The configuration is valid; nothing was changed."}

EVERY_KEY = {
    "listeners": {
        "*:18080": {
            "pass": "routes/main",
            "forwarded": {
                "client_ip": "X-Forwarded-For",
                "protocol": "X-Forwarded-Proto",
                "source": ["127.0.0.1", "10.0.0.0/8", "[fd00::/8]", "unix"],
                "recursive": True,
            },
            "backlog": 511,
        },
        "127.0.0.1:18081": {
            "pass": "applications/beta_app",
            "backlog": -1,
            "tls": {
                "certificate": ["bundle"],
                "conf_commands": {"minprotocol": "TLSv1.2",
                                  "ciphersuites": "TLS_AES_128_GCM_SHA256"},
                "session": {"cache_size": 1024, "timeout": 600, "tickets": [
                    "Y2Fub3B5IGV2ZXJ5LWtleSB0ZXN0OiA0OCBieXRlcyBvZiB0aWNrZXQga2V5ISEh"]},
            },
        },
        "[::1]:18082": {"pass": "upstreams/pool"},
        "unix:/tmp/canopy-every-key.sock": {
            "application": "alpha_app",
            "client_ip": {"header": "X-Real-IP", "source": "unix", "recursive": False},
        },
        "unix:@canopy-every-key": {"pass": "routes/static"},
    },
    "routes": {
        "main": [
            {
                "match": {
                    "method": ["GET", "!HEAD"],
                    "host": ["example.com", "*.example.com"],
                    "uri": ["/api/*", "~^/v[0-9]+/", "/caf%C3%A9"],
                    "query": "debug=*",
                    "arguments": [{"page": "1*"}, {"sort": ["asc", "desc"]}],
                    "headers": {"X-Key": "!secret*", "Accept": "*json*"},
                    "cookies": [{"session": "*"}],
                    "scheme": "https",
                    "source": ["10.0.0.0/8:1-65535", "!10.0.0.1", "[::1]:80", "unix"],
                    "destination": ["*:18080", "127.0.0.1-127.0.0.9"],
                    "if": "!$arg_skip",
                },
                "action": {
                    "pass": "applications/beta_app",
                    "rewrite": "/new${uri}",
                    "response_headers": {"X-Served-By": "$host", "Server": None},
                },
            },
            {"match": {"uri": "/old"},
             "action": {"return": 301, "location": "https://example.com$request_uri"}},
            {"match": {"uri": "/proxy/*"}, "action": {"proxy": "http://127.0.0.1:18090"}},
            {"match": {"uri": "/pool/*"}, "action": {"pass": "upstreams/pool"}},
            {"action": {"pass": "routes/static"}},
        ],
        "static": [
            {
                "action": {
                    "share": ["/srv/www$uri", "/srv/fallback${uri}"],
                    "index": "index.htm",
                    "types": ["text/*", "image/*", "!image/svg+xml"],
                    "chroot": "/srv",
                    "follow_symlinks": False,
                    "traverse_mounts": True,
                    "fallback": {
                        "share": "/srv/other$uri",
                        "fallback": {"return": 404},
                    },
                }
            }
        ],
    },
    "applications": {
        "beta_app": {
            "type": "beta 2",
            "processes": {"max": 4, "spare": 1, "idle_timeout": 20},
            "limits": {"timeout": 30, "requests": 1000, "shm": 10485760},
            "working_directory": "/tmp",
            "user": "nobody",
            "group": "nogroup",
            "environment": {"APP_ENV": "test", "EMPTY": ""},
            "stdout": "/tmp/beta.out",
            "stderr": "/tmp/beta.err",
            "script": "app.beta",
            "threads": 2,
        },
        "alpha_app": {"type": "alpha", "processes": 2, "anything": ["alpha's schema is {}"]},
    },
    "upstreams": {
        "pool": {
            "servers": {
                "127.0.0.1:18091": {"weight": 2},
                "[::1]:18092": {"weight": 0.5},
                "unix:/tmp/canopy-every-key-backend.sock": {},
            }
        }
    },
    "settings": {
        "listen_threads": 2,
        "http": {
            "header_read_timeout": 30,
            "body_read_timeout": 30,
            "send_timeout": 30,
            "idle_timeout": 180,
            "large_header_buffer_size": 8192,
            "large_header_buffers": 4,
            "body_buffer_size": 16384,
            "max_body_size": 8388608,
            "body_temp_path": "/tmp",
            "discard_unsafe_fields": True,
            "log_route": True,
            "server_version": False,
            "chunked_transform": True,
            "websocket": {"max_frame_size": 1048576, "read_timeout": 60,
                          "keepalive_interval": 30},
            "static": {"mime_types": {"text/x-code": [".c", ".h"], "text/plain": "README"}},
        },
    },
    "access_log": {
        "path": "/tmp/canopy-every-key-access.log",
        "format": {"remote": "$remote_addr", "line": "$request_line", "status": "$status",
                   "time": "$time_local", "ua": "$header_user_agent"},
        "if": "$cookie_log",
    },
}

# (JSON path below /config, value put there into EVERY_KEY, what is missing)
FEATURE_GATED = [
    ("/applications/beta_app/isolation", {"namespaces": {"pid": True}}, "isolation"),
    ("/settings/http/compression", {"types": "text/*", "compressors": {"encoding": "gzip"}},
     "compression"),
    ("/settings/js_module", "helpers", "njs"),
    ("/settings/telemetry", {"endpoint": "http://127.0.0.1:4318", "protocol": "http"},
     "OpenTelemetry"),
]


def with_value(tree, path, value):
    tree = copy.deepcopy(tree)
    *parents, last = path.strip("/").split("/")
    node = tree
    for segment in parents:
        node = node[int(segment)] if isinstance(node, list) else node[segment]
    node[last] = value
    return tree


def every_key_paths(value, prefix=""):
    """Every member path of a tree: what the test claims to cover."""
    found = set()
    if isinstance(value, dict):
        for key, item in value.items():
            found.add(f"{prefix}/{key}")
            found |= every_key_paths(item, f"{prefix}/{key}")
    elif isinstance(value, list):
        for item in value:
            found |= every_key_paths(item, prefix)
    return found


@pytest.fixture
def canopy_with_bundle(canopy, tmp_path):
    """The daemon with the certificate "bundle" that EVERY_KEY's TLS listener names."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
                    "-subj", "/CN=every.key",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    bundle = (tmp_path / "cert.pem").read_text() + (tmp_path / "key.pem").read_text()
    assert canopy.put("/certificates/bundle", bundle).status == 200
    return canopy


def stored(canopy):
    state = canopy.state_dir / "conf.json"
    return state.read_bytes() if state.exists() else None


def test_every_key_passes_a_dry_run_and_changes_nothing(canopy_with_bundle):
    canopy = canopy_with_bundle
    before = canopy.get("/config")
    stored_before = stored(canopy)
    answer = canopy.put("/config?dry_run=1", EVERY_KEY)
    assert answer.status == 200, answer
    assert answer.json == DRY_RUN_OK
    after = canopy.get("/config")
    assert after.json == before.json
    assert after.headers["ETag"] == before.headers["ETag"]
    assert stored(canopy) == stored_before


def test_every_key_list_is_really_used():
    """Guards the constant above against losing keys in an edit."""
    paths = every_key_paths(EVERY_KEY)
    for key in ["forwarded/client_ip", "forwarded/protocol", "forwarded/recursive", "backlog",
                "client_ip/header", "application", "match/method", "match/host", "match/uri",
                "match/query", "match/arguments", "match/headers", "match/cookies",
                "match/scheme", "match/source", "match/destination", "match/if",
                "action/rewrite", "action/response_headers", "action/location",
                "action/proxy", "action/share", "action/index", "action/types",
                "action/fallback", "action/chroot", "action/follow_symlinks",
                "action/traverse_mounts", "servers", "weight", "processes/max", "processes/spare",
                "processes/idle_timeout", "limits/timeout", "limits/requests", "limits/shm",
                "working_directory", "user", "group", "environment", "stdout", "stderr",
                "listen_threads", "http/websocket/max_frame_size", "http/static/mime_types",
                "http/chunked_transform", "http/log_route", "access_log/format",
                "access_log/if", "tls/certificate", "tls/conf_commands",
                "tls/session/cache_size", "tls/session/timeout", "tls/session/tickets"]:
        assert any(path.endswith("/" + key) for path in paths), key


def test_sections_alone_pass_a_dry_run_on_their_sub_paths(canopy):
    # What a script does: PUT one section. Sections that refer to nothing.
    for section in ["settings", "access_log", "upstreams"]:
        answer = canopy.put(f"/config/{section}?dry_run=1", EVERY_KEY[section])
        assert answer.status == 200, (section, answer)
        assert answer.json == DRY_RUN_OK
    assert canopy.get("/config").json == {"listeners": {}, "routes": [], "applications": {}}


@pytest.mark.parametrize("path,value,feature", FEATURE_GATED,
                         ids=[item[0] for item in FEATURE_GATED])
def test_keys_of_missing_features_are_refused(canopy_with_bundle, path, value, feature):
    canopy = canopy_with_bundle
    before = canopy.get("/config").json
    answer = canopy.put("/config?dry_run=1", with_value(EVERY_KEY, path, value))
    assert answer.status == 400, answer
    body = answer.json
    assert body["error"] == "Invalid configuration."
    assert body["path"] == "/config" + path
    # The detail says the build lacks the feature, naming it.
    assert "Canopy is built without" in body["detail"], body
    assert feature in body["detail"], body
    # Without dry_run the answer is the same, and nothing changes either way.
    assert canopy.put("/config", with_value(EVERY_KEY, path, value)).json == body
    assert canopy.get("/config").json == before
