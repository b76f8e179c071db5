"""The control API as Unit's users drive it: curl and scripts on the socket."""

import json
import os
import signal
import subprocess
import threading

from canopy_daemon import wait_until

DEFAULT = {"listeners": {}, "routes": [], "applications": {}}
RETURN_204 = [{"action": {"return": 204}}]


def test_fresh_daemon_answers_the_default_configuration(canopy):
    status, body = canopy.curl("http://localhost/config")
    assert status == 200
    assert json.loads(body) == DEFAULT
    answer = canopy.get("/config")
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Connection"] == "close"
    assert answer.headers["Server"].startswith("Canopy/")
    assert "Date" in answer.headers
    assert answer.headers["ETag"].startswith('"')


def test_put_get_and_subpaths(canopy):
    status, body = canopy.curl("-X", "PUT", "--data-binary", json.dumps(RETURN_204),
                               "http://localhost/config/routes")
    assert status == 200, body
    assert json.loads(body) == {"success": "Reconfiguration done."}
    assert canopy.get("/config/routes").json == RETURN_204
    assert canopy.get("/config/routes/0/action/return").json == 204
    assert canopy.get("/config/routes/").json == RETURN_204  # a trailing slash is ignored
    missing = canopy.get("/config/routes/1")
    assert missing.status == 404
    assert missing.json["error"] == "Value doesn't exist."


def test_response_layout_uses_tabs_and_crlf(canopy):
    assert canopy.put("/config/routes", RETURN_204).status == 200
    body = canopy.get("/config/routes/0").body
    assert body == '{\r\n\t"action": {\r\n\t\t"return": 204\r\n\t}\r\n}\r\n'


def test_numbers_are_echoed_as_sent(canopy):
    body = '{"http": {"idle_timeout": 180.0, "max_body_size": 1e6}}'
    assert canopy.put("/config/settings", body).status == 200, canopy.log()
    raw = canopy.get("/config/settings/http").body
    assert "180.0" in raw and "1e6" in raw


def test_json_dialect_comments_trailing_commas_and_bom(canopy):
    body = '\ufeff// routes\n[ /* one */ {"action": {"return": 204,},}, ]'
    answer = canopy.put("/config/routes", body)
    assert answer.status == 200, answer
    assert canopy.get("/config/routes").json == RETURN_204


def test_invalid_json_names_its_location(canopy):
    answer = canopy.put("/config/routes", '[\n  {"action": }\n]')
    assert answer.status == 400
    assert answer.json["error"] == "Invalid JSON."
    assert answer.json["location"]["line"] == 2
    assert answer.json["location"]["column"] >= 12
    assert "detail" in answer.json
    assert canopy.get("/config").json == DEFAULT


def test_duplicate_keys_are_refused(canopy):
    answer = canopy.put("/config/settings", '{"http": {}, "http": {}}')
    assert answer.status == 400
    assert answer.json["error"] == "Invalid JSON."


def test_validation_errors_name_the_path_and_change_nothing(canopy):
    answer = canopy.put("/config/routes", [{"action": {"return": 204, "bogus": 1}}])
    assert answer.status == 400
    assert answer.json["error"] == "Invalid configuration."
    assert "bogus" in answer.json["detail"]
    assert answer.json["path"].startswith("/config/routes/0/action")
    assert canopy.get("/config").json == DEFAULT


def test_negative_timeouts_are_refused_unlike_unit(canopy):
    answer = canopy.put("/config/settings", {"http": {"idle_timeout": -1}})
    assert answer.status == 400
    assert "idle_timeout" in answer.json["detail"] or "idle_timeout" in answer.json["path"]


def test_pass_must_name_something_that_exists(canopy):
    answer = canopy.put("/config/routes", [{"action": {"pass": "routes/nowhere"}}])
    assert answer.status == 400
    assert answer.json["error"] == "Invalid configuration."
    answer = canopy.put("/config/routes",
                        [{"action": {"pass": "applications/missing"}}])
    assert answer.status == 400


def test_unknown_application_type_lists_the_available_ones(canopy):
    answer = canopy.put("/config/applications/app", {"type": "php", "root": "/srv"})
    assert answer.status == 400
    detail = answer.json["detail"]
    assert "php" in detail and "alpha" in detail and "beta" in detail


def test_application_keys_follow_the_module_schema(canopy):
    answer = canopy.put("/config/applications/app", {"type": "beta"})
    assert answer.status == 400
    assert "script" in answer.json["detail"]
    answer = canopy.put("/config/applications/app",
                        {"type": "beta", "script": "app.rb", "threads": 0})
    assert answer.status == 400
    assert "threads" in answer.json["detail"] or "threads" in answer.json["path"]


def test_the_routers_reason_comes_back_when_it_refuses(canopy):
    # The fixture module "beta" returns from start() at once, without ever
    # serving: its process cannot become ready, and the router says so.
    answer = canopy.put("/config/applications/app", {"type": "beta 2", "script": "app.rb"})
    assert answer.status == 500
    assert 'Failed to start application "app"' in answer.json["detail"]
    assert canopy.get("/config").json["applications"] == {}


def test_post_appends_and_delete_removes(canopy):
    assert canopy.put("/config/routes", RETURN_204).status == 200
    assert canopy.post("/config/routes", {"action": {"return": 404}}).status == 200
    assert [step["action"]["return"] for step in canopy.get("/config/routes").json] == [204, 404]
    assert canopy.post("/config/listeners", {}).status == 405
    assert canopy.post("/config", {}).status == 405
    assert canopy.post("/config/nothing", {}).status == 404
    assert canopy.delete("/config/routes/0").status == 200
    assert canopy.get("/config/routes").json == [{"action": {"return": 404}}]
    assert canopy.delete("/config/routes/5").status == 404
    assert canopy.delete("/config").status == 200
    assert canopy.get("/config").json == {}


def test_put_at_array_length_appends_and_beyond_is_404(canopy):
    assert canopy.put("/config/routes", RETURN_204).status == 200
    assert canopy.put("/config/routes/1", {"action": {"return": 301}}).status == 200
    assert len(canopy.get("/config/routes").json) == 2
    assert canopy.put("/config/routes/5", {"action": {"return": 301}}).status == 404
    assert canopy.put("/config/missing/child", {}).status == 404


def test_percent_encoded_keys(canopy):
    routes = {"main route": RETURN_204, "a/b": RETURN_204}
    assert canopy.put("/config/routes", routes).status == 200
    assert canopy.get("/config/routes/main%20route").json == RETURN_204
    assert canopy.get("/config/routes/a%2Fb").json == RETURN_204
    assert canopy.put("/config/routes/a%2Fb/0/action/return", "302").status == 200
    assert canopy.get("/config/routes").json["a/b"][0]["action"]["return"] == 302


def test_scalar_bodies(canopy):
    assert canopy.put("/config/routes", RETURN_204).status == 200
    assert canopy.put("/config/routes/0/action/return", "410").status == 200
    assert canopy.get("/config/routes/0/action/return").json == 410


def test_other_methods_and_paths(canopy):
    assert canopy.request("PATCH", "/config").status == 405
    assert canopy.get("/nowhere").status == 404
    assert canopy.get("/nowhere").json["error"] == "Value doesn't exist."
    assert canopy.put("/status", {}).status == 405
    assert canopy.get("/status/nothing").status == 404
    root = canopy.get("/").json
    assert set(root) >= {"config", "status", "certificates"}


def test_etag_and_if_match(canopy):
    first = canopy.get("/config").headers["ETag"]
    assert canopy.get("/config").headers["ETag"] == first
    answer = canopy.put("/config/routes", RETURN_204, headers={"If-Match": first})
    assert answer.status == 200
    second = canopy.get("/config").headers["ETag"]
    assert second != first
    stale = canopy.put("/config/routes", [], headers={"If-Match": first})
    assert stale.status == 412
    assert canopy.get("/config/routes").json == RETURN_204
    assert canopy.put("/config/routes", [], headers={"If-Match": "*"}).status == 200


def test_dry_run_validates_and_changes_nothing(canopy):
    answer = canopy.put("/config/routes?dry_run=1", RETURN_204)
    assert answer.status == 200
    assert "success" in answer.json
    assert canopy.get("/config").json == DEFAULT
    bad = canopy.put("/config/routes?dry_run=1", [{"action": {}}])
    assert bad.status == 400
    assert not (canopy.state_dir / "conf.json").exists()


def test_concurrent_changes_are_all_answered_in_order(canopy):
    assert canopy.put("/config/routes", []).status == 200
    answers = []
    lock = threading.Lock()

    def append(number):
        answer = canopy.post("/config/routes", {"action": {"return": 200 + number}})
        with lock:
            answers.append(answer.status)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 20
    codes = sorted(step["action"]["return"] for step in canopy.get("/config/routes").json)
    assert codes == list(range(200, 220))


def test_configuration_is_persisted_atomically_and_restored(canopy):
    assert canopy.put("/config/routes", RETURN_204).status == 200
    stored = json.loads((canopy.state_dir / "conf.json").read_text())
    assert stored["routes"] == RETURN_204
    assert not (canopy.state_dir / "conf.json.tmp").exists()
    canopy.restart()
    assert canopy.get("/config/routes").json == RETURN_204


def test_restarted_router_and_controller_lose_nothing(canopy):
    assert canopy.put("/config/routes", RETURN_204).status == 200
    router = canopy.child("canopy: router")
    os.kill(router, signal.SIGKILL)
    assert wait_until(lambda: canopy.child("canopy: router") not in (None, router))
    assert canopy.put("/config/settings", {"http": {}}).status == 200
    controller = canopy.child("canopy: controller")
    os.kill(controller, signal.SIGKILL)
    assert wait_until(lambda: canopy.child("canopy: controller") not in (None, controller))
    assert wait_until(lambda: canopy.get("/config").status == 200)
    assert canopy.get("/config").json == dict(DEFAULT, routes=RETURN_204, settings={"http": {}})


def test_corrupt_state_file_is_moved_aside(make_canopy):
    daemon = make_canopy()
    daemon.state_dir.mkdir()
    (daemon.state_dir / "conf.json").write_text('{"routes": [ broken')
    daemon.start()
    assert daemon.get("/config").json == DEFAULT
    aside = list(daemon.state_dir.glob("conf.json.invalid-*"))
    assert len(aside) == 1 and "broken" in aside[0].read_text()
    assert "stored configuration is unusable" in daemon.log()


def test_invalid_state_file_is_moved_aside(make_canopy):
    daemon = make_canopy()
    daemon.state_dir.mkdir()
    (daemon.state_dir / "conf.json").write_text('{"routes": [{"action": {"pass": "routes/x"}}]}')
    daemon.start()
    assert daemon.get("/config").json == DEFAULT
    assert list(daemon.state_dir.glob("conf.json.invalid-*"))


def test_initial_configuration_file_for_containers(make_canopy, tmp_path):
    initial = tmp_path / "initial.json"
    initial.write_text('{"listeners": {}, "routes": [{"action": {"return": 204}}], '
                       '"applications": {}, /* comment */ }')
    os.chmod(tmp_path, 0o755)
    os.chmod(initial, 0o644)
    daemon = make_canopy(extra_args=["--config", str(initial)])
    daemon.start()
    assert daemon.get("/config/routes").json == RETURN_204
    # Once the state holds a configuration, it wins over the file.
    assert daemon.put("/config/routes", []).status == 200
    daemon.restart()
    assert daemon.get("/config/routes").json == []


def test_initial_configuration_that_is_not_json_stops_start_up(make_canopy, tmp_path):
    initial = tmp_path / "broken.json"
    initial.write_text("{ nope")
    daemon = make_canopy(extra_args=["--config", str(initial)])
    result = subprocess.run(daemon.arguments(), capture_output=True, text=True, timeout=20)
    assert result.returncode == 1
    assert "broken.json" in result.stderr
    assert not daemon.control.exists()


def test_status_and_modules(canopy):
    status = canopy.get("/status").json
    assert status["modules"]["alpha"] == {
        "version": "1.0",
        "lib": os.path.join(os.environ["CANOPY_FIXTURE_GOOD_MODULES_DIR"], "alpha1.0.canopy.so"),
    }
    assert status["modules"]["beta"]["version"] == "2.3.1"
    assert status["connections"] == {"accepted": 0, "active": 0, "idle": 0, "closed": 0}
    assert status["requests"] == {"total": 0}
    assert status["applications"] == {}
    assert canopy.get("/status/modules/beta/version").json == "2.3.1"
    assert canopy.get("/status/requests/total").json == 0


def test_restart_endpoint_rules(canopy):
    assert canopy.get("/control/applications/nothing/restart").status == 404
    assert canopy.post("/control/applications/nothing/restart", "").status == 405
    assert canopy.get("/control/elsewhere").status == 404


def test_malformed_http_gets_an_answer_and_the_daemon_carries_on(canopy):
    import socket
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(canopy.control))
        client.sendall(b"GARBAGE\r\n\r\n")
        client.settimeout(5)
        data = client.recv(4096)
    assert data.startswith(b"HTTP/1.1 400")
    assert canopy.get("/config").status == 200
