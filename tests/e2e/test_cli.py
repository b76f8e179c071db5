"""The `canopy` command-line tool against a real canopyd (docs/cli.md)."""

import json
import os
import socket
import subprocess
import textwrap

import pytest

DEFAULT = {"listeners": {}, "routes": [], "applications": {}}
RETURN_204 = [{"action": {"return": 204}}]

pytestmark = pytest.mark.skipif("CANOPY_CLI" not in os.environ,
                                reason="CANOPY_CLI names the canopy binary")


def cli_environment(**extra):
    env = {key: value for key, value in os.environ.items()
           if key not in ("CANOPY_CONTROL", "VISUAL", "EDITOR")}
    env.update(extra)
    return env


def run(*args, control=None, input=None, stdin=None, env=None, cwd=None, user=None):
    """Runs canopy; `control` is a daemon (its socket) or an address string."""
    command = [os.environ["CANOPY_CLI"]]
    if control is not None:
        address = control if isinstance(control, str) else f"unix:{control.control}"
        command += ["--control", address]
    command += list(args)
    if stdin is None and input is None:
        stdin = subprocess.DEVNULL
    return subprocess.run(command, input=input, stdin=stdin, capture_output=True, text=True,
                          env=env or cli_environment(), cwd=cwd, timeout=30, user=user)


def make_editor(directory, name, body):
    """An $EDITOR: a Python script run as `editor FILE`."""
    script = directory / name
    script.write_text("#!/usr/bin/python3\nimport json, pathlib, sys\n"
                      "path = pathlib.Path(sys.argv[1])\n" + textwrap.dedent(body))
    script.chmod(0o755)
    return str(script)


def run_on_terminal(args, control, env, answers):
    """Runs canopy with a pseudo-terminal on stdin holding `answers`."""
    master, slave = os.openpty()
    try:
        os.write(master, answers.encode())
        return run(*args, control=control, stdin=slave, env=env)
    finally:
        os.close(slave)
        os.close(master)


# --- command line ---------------------------------------------------------------------------

def test_version_and_help():
    version = run("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("canopy version: ")
    assert "default control socket: unix:/" in version.stdout
    for args in (["--help"], ["config", "--help"], ["config", "put", "--help"],
                 ["status", "--help"], ["restart", "--help"]):
        shown = run(*args)
        assert shown.returncode == 0, args
        assert "Usage: canopy" in shown.stdout
    assert "FILE" in run("config", "put", "--help").stdout


@pytest.mark.parametrize("args", [
    [],
    ["config"],
    ["bogus"],
    ["config", "get", "--bogus"],
    ["config", "put", "routes"],
    ["restart"],
    ["--timeout", "-1", "status"],
])
def test_usage_errors_exit_2(args):
    result = run(*args)
    assert result.returncode == 2, result
    assert result.stderr.startswith("canopy: ")
    assert result.stdout == ""


def test_bad_path_and_bad_address_are_usage_errors(canopy):
    assert run("config", "get", 'listeners/"unclosed', control=canopy).returncode == 2
    assert run("config", "get", "routes\\", control=canopy).returncode == 2
    result = run("status", control="nowhere")
    assert result.returncode == 2
    assert "invalid control address" in result.stderr


def test_unreadable_file_is_a_usage_error(canopy, tmp_path):
    result = run("config", "put", "routes", str(tmp_path / "missing.json"), control=canopy)
    assert result.returncode == 2
    assert "missing.json" in result.stderr


# --- config get / put / post / delete --------------------------------------------------------

def test_config_get_prints_the_json_with_unix_line_ends(canopy):
    result = run("config", "get", control=canopy)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == DEFAULT
    assert "\r" not in result.stdout
    assert result.stdout == canopy.get("/config").body.replace("\r\n", "\n")


def test_config_put_from_a_file_and_from_stdin(canopy, tmp_path):
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps(RETURN_204))
    result = run("config", "put", "routes", str(routes), control=canopy)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"success": "Reconfiguration done."}
    assert canopy.get("/config/routes").json == RETURN_204

    result = run("config", "put", "routes/0/action/return", "-", input="410", control=canopy)
    assert result.returncode == 0, result.stderr
    assert canopy.get("/config/routes/0/action/return").json == 410
    scalar = run("config", "get", "routes/0/action/return", control=canopy)
    assert scalar.stdout.strip() == "410"

    whole = dict(DEFAULT, routes=RETURN_204)
    assert run("config", "put", "/", "-", input=json.dumps(whole), control=canopy).returncode == 0
    assert canopy.get("/config").json == whole


def test_natural_paths_are_percent_encoded(canopy):
    listener = '{"pass": "routes"}'
    assert canopy.put("/config/routes", RETURN_204).status == 200
    result = run("-v", "config", "put", "--dry-run", "listeners/*:8080", "-", input=listener,
                 control=canopy)
    assert result.returncode == 0, result.stderr
    assert "PUT /config/listeners/%2A%3A8080?dry_run=1" in result.stderr

    routes = {"main route": RETURN_204, "a/b": RETURN_204}
    assert run("config", "put", "routes", "-", input=json.dumps(routes),
               control=canopy).returncode == 0
    assert json.loads(run("config", "get", "routes/main route", control=canopy).stdout) \
        == RETURN_204
    for path in ("routes/a\\/b/0/action/return", 'routes/"a/b"/0/action/return'):
        got = run("-v", "config", "get", path, control=canopy)
        assert got.returncode == 0, (path, got.stderr)
        assert got.stdout.strip() == "204"
        assert "GET /config/routes/a%2Fb/0/action/return" in got.stderr
    assert run("config", "get", "/routes/", control=canopy).returncode == 0


def test_dry_run_changes_nothing(canopy):
    result = run("config", "put", "--dry-run", "routes", "-", input=json.dumps(RETURN_204),
                 control=canopy)
    assert result.returncode == 0, result.stderr
    assert "nothing was changed" in result.stdout
    assert canopy.get("/config").json == DEFAULT

    invalid = run("config", "put", "--dry-run", "routes", "-",
                  input='[{"action": {"return": 1000}}]', control=canopy)
    assert invalid.returncode == 1
    assert "Invalid configuration." in invalid.stderr

    assert canopy.put("/config/routes", RETURN_204).status == 200
    assert run("config", "delete", "--dry-run", "routes/0", control=canopy).returncode == 0
    assert run("config", "post", "--dry-run", "routes", "-", input='{"action": {"return": 404}}',
               control=canopy).returncode == 0
    assert canopy.get("/config/routes").json == RETURN_204


def test_config_post_and_delete(canopy):
    assert canopy.put("/config/routes", RETURN_204).status == 200
    result = run("config", "post", "routes", "-", input='{"action": {"return": 404}}',
                 control=canopy)
    assert result.returncode == 0, result.stderr
    assert len(canopy.get("/config/routes").json) == 2
    assert run("config", "delete", "routes/1", control=canopy).returncode == 0
    assert canopy.get("/config/routes").json == RETURN_204
    missing = run("config", "delete", "routes/7", control=canopy)
    assert missing.returncode == 1
    not_an_array = run("config", "post", "listeners", "-", input="{}", control=canopy)
    assert not_an_array.returncode == 1
    assert "HTTP 405" in not_an_array.stderr


# --- errors and exit codes -------------------------------------------------------------------

def test_missing_value_exits_1_with_the_error(canopy):
    result = run("config", "get", "routes/3", control=canopy)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Value doesn't exist." in result.stderr
    assert "HTTP 404" in result.stderr


def test_invalid_json_shows_line_and_column(canopy):
    result = run("config", "put", "routes", "-", input='[\n  {"action": }\n]', control=canopy)
    assert result.returncode == 1
    assert "Invalid JSON." in result.stderr
    assert "detail: " in result.stderr
    assert "at line 2, column" in result.stderr
    assert '{"action": }' in result.stderr  # the offending line, with a caret under it
    assert canopy.get("/config").json == DEFAULT


def test_invalid_configuration_names_the_path(canopy):
    result = run("config", "put", "routes", "-", input='[{"action": {"return": 204, "bogus": 1}}]',
                 control=canopy)
    assert result.returncode == 1
    assert "Invalid configuration." in result.stderr
    assert "path: /config/routes/0/action/bogus" in result.stderr


def test_no_daemon_exits_3(tmp_path):
    missing = tmp_path / "none.sock"
    result = run("status", control=f"unix:{missing}")
    assert result.returncode == 3
    assert result.stderr.strip() == \
        f"canopy: no canopyd answers on unix:{missing}: is it running? use --control"

    # A socket file nobody listens on: connection refused.
    stale = tmp_path / "stale.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(stale))
    listener.close()
    result = run("config", "get", control=f"unix:{stale}")
    assert result.returncode == 3
    assert "no canopyd answers" in result.stderr

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    result = run("runtimes", control=f"127.0.0.1:{port}")
    assert result.returncode == 3
    assert "no canopyd answers on 127.0.0.1:" in result.stderr


def test_silent_server_times_out_with_exit_3(tmp_path):
    path = tmp_path / "silent.sock"
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(str(path))
    silent.listen(4)  # accepts into the backlog, never answers
    try:
        result = run("--timeout", "0.3", "status", control=f"unix:{path}")
    finally:
        silent.close()
    assert result.returncode == 3
    assert "did not answer within 0.3 s" in result.stderr


def test_permission_denied_exits_3(canopy):
    user = None
    if os.geteuid() == 0:
        user = 65534  # root passes any permission check; nobody does not
    else:
        os.chmod(canopy.control, 0)
    result = run("status", control=canopy, user=user)
    assert result.returncode == 3
    assert f"permission denied on unix:{canopy.control}" in result.stderr


# --- finding the socket ----------------------------------------------------------------------

def test_environment_names_the_socket_and_the_option_wins(canopy, tmp_path):
    env = cli_environment(CANOPY_CONTROL=f"unix:{canopy.control}")
    result = run("-v", "config", "get", env=env)
    assert result.returncode == 0, result.stderr
    assert f"control socket unix:{canopy.control} ($CANOPY_CONTROL)" in result.stderr
    overridden = run("config", "get", control=f"unix:{tmp_path}/none.sock", env=env)
    assert overridden.returncode == 3


def test_default_falls_back_to_the_make_run_socket(canopy, tmp_path):
    default = run("--version").stdout.split("default control socket: unix:")[1].strip()
    if os.path.exists(default):
        pytest.skip(f"a daemon's socket exists at the default {default}")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "control.sock").symlink_to(canopy.control)
    result = run("-v", "config", "get", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == DEFAULT
    assert "./run/control.sock, since the default" in result.stderr

    elsewhere = run("status", cwd=tmp_path / "run")
    assert elsewhere.returncode == 3
    assert f"no canopyd answers on unix:{default} (nor on ./run/control.sock)" in elsewhere.stderr


# --- status, runtimes, restart ---------------------------------------------------------------

def test_status_table_and_json(canopy):
    # external is built into canopyd, in canopyd's version.
    external = canopy.get("/status/modules").json["external"]["version"]
    table = run("status", control=canopy)
    assert table.returncode == 0, table.stderr
    assert table.stdout.split("\n")[0].split() == [
        "runtimes", "alpha", "1.0,", "beta", "2.3.1,", "external", external]
    assert "connections" in table.stdout and "accepted" in table.stdout
    assert "applications  none" in table.stdout
    raw = run("status", "--json", control=canopy)
    assert raw.returncode == 0
    assert set(json.loads(raw.stdout)) >= {"modules", "connections", "requests", "applications"}


def test_runtimes_table_and_json(canopy):
    external = canopy.get("/status/modules").json["external"]["version"]
    table = run("runtimes", control=canopy)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["TYPE", "VERSION", "FILE"]
    rows = [line.split() for line in lines[1:]]
    # external is built into canopyd: no file.
    assert [row[:2] for row in rows] == [["alpha", "1.0"], ["beta", "2.3.1"], ["external", external]]
    assert rows[0][2].endswith("alpha1.0.canopy.so")
    assert rows[2][2] == "(built-in)"
    raw = json.loads(run("runtimes", "--json", control=canopy).stdout)
    assert raw == canopy.get("/status/modules").json


def test_restart_of_an_unknown_application_exits_1(canopy):
    result = run("restart", "shop", control=canopy)
    assert result.returncode == 1
    assert "Value doesn't exist." in result.stderr
    verbose = run("-v", "restart", "a/b", control=canopy)
    assert "GET /control/applications/a%2Fb/restart" in verbose.stderr


# --- config edit -----------------------------------------------------------------------------

def test_edit_applies_the_saved_file(canopy, tmp_path):
    assert canopy.put("/config/routes", RETURN_204).status == 200
    editor = make_editor(tmp_path, "editor", """
        text = path.read_text()
        assert "\\r" not in text and path.suffix == ".json"
        tree = json.loads(text)
        tree[0]["action"]["return"] = 410
        path.write_text(json.dumps(tree))
    """)
    env = cli_environment(EDITOR=editor, TMPDIR=str(tmp_path))
    result = run("config", "edit", "routes", control=canopy, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"success": "Reconfiguration done."}
    assert canopy.get("/config/routes/0/action/return").json == 410
    assert not list(tmp_path.glob("canopy-edit-*"))  # nothing left behind


def test_edit_prefers_visual_and_runs_through_the_shell(canopy, tmp_path):
    editor = make_editor(tmp_path, "editor", """
        tree = json.loads(path.read_text())
        tree["routes"] = [{"action": {"return": int(sys.argv[2] if len(sys.argv) > 2 else 0)}}]
        path.write_text(json.dumps(tree))
    """)
    # The file comes last: "$VISUAL FILE", so options in the variable work.
    env = cli_environment(VISUAL="sh -c 'exec \"$0\" \"$1\" 301' " + editor, EDITOR="false",
                          TMPDIR=str(tmp_path))
    result = run("config", "edit", control=canopy, env=env)
    assert result.returncode == 0, result.stderr
    assert canopy.get("/config/routes").json == [{"action": {"return": 301}}]


def test_edit_without_changes_does_nothing(canopy, tmp_path):
    env = cli_environment(EDITOR="true", TMPDIR=str(tmp_path))
    etag = canopy.get("/config").headers["ETag"]
    result = run("config", "edit", control=canopy, env=env)
    assert result.returncode == 0
    assert "no changes" in result.stderr
    assert canopy.get("/config").headers["ETag"] == etag
    assert not list(tmp_path.glob("canopy-edit-*"))


def test_edit_of_a_missing_value_exits_1(canopy, tmp_path):
    env = cli_environment(EDITOR="true", TMPDIR=str(tmp_path))
    result = run("config", "edit", "routes/9", control=canopy, env=env)
    assert result.returncode == 1
    assert "Value doesn't exist." in result.stderr


def test_failing_editor_applies_nothing(canopy, tmp_path):
    env = cli_environment(EDITOR="false", TMPDIR=str(tmp_path))
    result = run("config", "edit", control=canopy, env=env)
    assert result.returncode == 1
    assert "the editor (false) failed: exit status 1" in result.stderr
    assert canopy.get("/config").json == DEFAULT


INVALID_JSON_EDITOR = """
    path.write_text('{\\n  "routes": [ }\\n}\\n')
"""


def test_edit_with_invalid_json_and_no_terminal_fails(canopy, tmp_path):
    editor = make_editor(tmp_path, "editor", INVALID_JSON_EDITOR)
    env = cli_environment(EDITOR=editor, TMPDIR=str(tmp_path))
    result = run("config", "edit", control=canopy, env=env)
    assert result.returncode == 1
    assert "Invalid JSON." in result.stderr
    assert "at line 2, column" in result.stderr
    assert "Edit again?" not in result.stderr
    kept = list(tmp_path.glob("canopy-edit-*.json"))
    assert len(kept) == 1 and f"your changes are kept in {kept[0]}" in result.stderr
    assert canopy.get("/config").json == DEFAULT


def test_edit_with_invalid_json_declined_on_the_terminal(canopy, tmp_path):
    editor = make_editor(tmp_path, "editor", INVALID_JSON_EDITOR)
    env = cli_environment(EDITOR=editor, TMPDIR=str(tmp_path))
    result = run_on_terminal(["config", "edit"], canopy, env, "n\n")
    assert result.returncode == 1, result.stderr
    assert "Invalid JSON." in result.stderr
    assert result.stderr.count("Edit again? [Y/n]") == 1
    assert canopy.get("/config").json == DEFAULT


def test_edit_again_after_an_error_then_apply(canopy, tmp_path):
    # First round: an invalid value; second round (after "y"): a valid one.
    editor = make_editor(tmp_path, "editor", """
        rounds = path.with_name("rounds")
        count = int(rounds.read_text()) if rounds.exists() else 0
        rounds.write_text(str(count + 1))
        tree = json.loads(path.read_text())
        tree["routes"] = [{"action": {"return": 1000 if count == 0 else 418}}]
        path.write_text(json.dumps(tree))
    """)
    env = cli_environment(EDITOR=editor, TMPDIR=str(tmp_path))
    result = run_on_terminal(["config", "edit"], canopy, env, "y\n")
    assert result.returncode == 0, result.stderr
    assert "Invalid configuration." in result.stderr
    assert "path: /config/routes/0/action/return" in result.stderr
    assert (tmp_path / "rounds").read_text() == "2"
    assert canopy.get("/config/routes").json == [{"action": {"return": 418}}]


def test_edit_detects_a_concurrent_change(canopy, tmp_path):
    # The editor changes the configuration behind canopy's back, once.
    cli = os.environ["CANOPY_CLI"]
    editor = make_editor(tmp_path, "editor", f"""
        import subprocess
        rounds = path.with_name("rounds")
        count = int(rounds.read_text()) if rounds.exists() else 0
        rounds.write_text(str(count + 1))
        if count == 0:
            subprocess.run([{cli!r}, "--control", "unix:{canopy.control}", "config", "put",
                            "routes", "-"], input='[{{"action": {{"return": 204}}}}]',
                           text=True, check=True, capture_output=True)
        tree = json.loads(path.read_text())
        tree["settings"] = {{"http": {{"idle_timeout": 30}}}}
        path.write_text(json.dumps(tree))
    """)
    env = cli_environment(EDITOR=editor, TMPDIR=str(tmp_path))
    result = run("config", "edit", control=canopy, env=env)
    assert result.returncode == 1
    assert "changed while you were editing it" in result.stderr
    assert "settings" not in canopy.get("/config").json
    assert canopy.get("/config/routes").json == RETURN_204

    (tmp_path / "rounds").unlink()
    assert canopy.put("/config", DEFAULT).status == 200
    again = run_on_terminal(["config", "edit"], canopy, env, "y\n")
    assert again.returncode == 0, again.stderr
    assert "starting from the new configuration? [Y/n]" in again.stderr
    final = canopy.get("/config").json
    assert final["routes"] == RETURN_204  # the concurrent change, kept
    assert final["settings"] == {"http": {"idle_timeout": 30}}
