"""The settings API (contract §9, issue 28) against a real collector process with its console and
real agents: every route, every role, validation errors with --check-config's words, CSRF, the
audit events (before/after, secrets masked), and changes applied live (a namespace's minimum level
raised: events below it dropped without a restart)."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.harness import Cluster, free_port, search_json, wait_for, write_lines
from tests.web_console import Console, Http, start_console

S = "/api/v1/settings"


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    folder = tmp_path_factory.mktemp("settings-api")
    cluster = Cluster(folder)
    try:
        yield start_console(cluster, folder, retention={"namespaces": {"fixed": {"general": "30d"}}},
                            forwarders=[{"name": "from-file", "type": "console"}])
    finally:
        cluster.stop_all()


def api(console: Console, who: str | None) -> Http:
    return Http(console.base, token=console.tokens[who] if who else None)


def put_json(client: Http, path: str, data: object, headers: dict[str, str] | None = None):
    return client.request("PUT", path, json.dumps(data).encode(), {"Content-Type": "application/json",
                                                                   **(headers or {})})


def audit(console: Console, action: str) -> list[dict]:
    return search_json(console.collector, "--token-file", console.token_files["root"], "--action", action,
                       "--namespace", "_collector")


def jsonl_forwarder(console: Console, name: str, **extra) -> dict:
    path = console.collector.config["data_dir"] + f"/../{name}.jsonl"
    return {"name": name, "type": "file", "path": path, **extra}


# -- forwarders ---------------------------------------------------------------------------------

def test_forwarder_add_get_edit_remove_as_admin(console):
    root = api(console, "root")
    body = jsonl_forwarder(console, "ship", min_level="warning")
    reply = root.post_json(f"{S}/forwarders", body)
    assert reply.status == 201, reply.text
    entry = reply.json()
    assert entry["name"] == "ship" and entry["source"] == "store" and entry["read_only"] is False
    assert entry["type"] == "file" and entry["min_level"] == "warning" and entry["enabled"] is True
    assert entry["changed"]["user"] == "root" and entry["changed"]["via"] == "api"
    listed = {f["name"]: f for f in root.get(f"{S}/forwarders").json()["forwarders"]}
    assert set(listed) == {"from-file", "ship"}
    assert listed["from-file"]["source"] == "collector.toml" and listed["from-file"]["read_only"] is True
    assert {"state", "lag_events", "last_error", "last_error_at"} <= set(listed["ship"])
    changed = put_json(root, f"{S}/forwarders/ship", {**body, "min_level": "error"})
    assert changed.status == 200 and changed.json()["min_level"] == "error"
    events = audit(console, "settings/forwarders.update")
    assert events[-1]["user"] == "root"
    assert events[-1]["fields"]["before"]["min_level"] == "warning"
    assert events[-1]["fields"]["after"]["min_level"] == "error"
    assert events[-1]["fields"]["via"] == "api" and events[-1]["tier"] == "security"
    assert set(events[-1]["fields"]) == {"via", "kind", "name", "before", "after", "peer_ip"}
    assert (events[-1]["fields"]["kind"], events[-1]["fields"]["name"], events[-1]["message"]) == \
        ("forwarders", "ship", "forwarders 'ship' updated by root via api")
    assert (events[-1]["level"], events[-1]["log_type"], events[-1]["namespace"]) == ("info", "audit", "_collector")
    created = audit(console, "settings/forwarders.create")[-1]["fields"]
    assert created["before"] is None and created["after"]["path"] == body["path"]
    gone = root.request("DELETE", f"{S}/forwarders/ship")
    assert gone.status == 200 and gone.json() == {"deleted": "ship"}
    assert root.get(f"{S}/forwarders/ship").status == 404
    assert audit(console, "settings/forwarders.delete")[-1]["fields"]["after"] is None


def test_forwarder_validation_errors_are_check_config_messages(console):
    root = api(console, "root")
    cases = [
        ({"name": "bad", "type": "syslog", "port": 70000}, "forwarders.bad.port: expected a port number 1-65535, got 70000"),
        ({"name": "bad", "type": "carrier-pigeon"},
         'forwarders.bad.type: expected "syslog" or "jsonl" or "file" or "console", got "carrier-pigeon"'),
        ({"name": "bad", "type": "console", "colour": "red"}, "forwarders.bad.colour: unknown key"),
        ({"name": "bad", "type": "console", "min_level": "loud"}, "forwarders.bad.min_level: "),
    ]
    for body, message in cases:
        reply = root.post_json(f"{S}/forwarders", body)
        assert reply.status == 400, (body, reply.text)
        assert reply.json()["error"].startswith(message), reply.json()["error"]
    assert root.post_json(f"{S}/forwarders", {"type": "console"}).json()["error"] == \
        "forwarders: name: required, a non-empty string"
    assert root.post_json(f"{S}/forwarders", {"name": "from-file", "type": "console"}).status == 409
    assert [f["name"] for f in root.get(f"{S}/forwarders").json()["forwarders"]] == ["from-file"]


def test_changes_need_the_csrf_token_with_a_session(console):
    browser = Http(console.base)
    assert browser.post_form("/signin", {"token": console.tokens["root"]}).status in (302, 303)
    body = jsonl_forwarder(console, "csrf")
    refused = browser.post_json(f"{S}/forwarders", body)
    assert refused.status == 403 and "CSRF" in refused.json()["error"]
    page = browser.get("/events").text
    csrf = page.split('name="csrf" value="')[1].split('"')[0] if 'name="csrf" value="' in page else \
        page.split('name="csrf-token" content="')[1].split('"')[0]
    made = browser.post_json(f"{S}/forwarders", body, headers={"X-CSRF-Token": csrf})
    assert made.status == 201 and made.json()["changed"]["via"] == "web"
    assert browser.request("DELETE", f"{S}/forwarders/csrf", headers={"X-CSRF-Token": csrf}).status == 200


def test_roles(console):
    root = api(console, "root")
    own = {"name": "pay-only", "type": "jsonl", "port": free_port(),
           "include": [{"field": "namespace", "pattern": "payments"}]}
    other = {"name": "everything", "type": "jsonl", "port": free_port()}
    assert api(console, "payadm").post_json(f"{S}/forwarders", own).status == 201
    refused = api(console, "payadm").post_json(f"{S}/forwarders", other)
    assert refused.status == 403 and "select nothing but its namespaces" in refused.json()["error"]
    assert root.post_json(f"{S}/forwarders", other).status == 201
    # A forwarder it may not see is answered as absent, whatever the verb.
    for method in ("GET", "PUT", "DELETE"):
        assert _send(api(console, "payadm"), method, f"{S}/forwarders/everything", other) == 404, method
    assert [f["name"] for f in api(console, "payadm").get(f"{S}/forwarders").json()["forwarders"]] == ["pay-only"]
    assert {f["name"] for f in api(console, "audrey").get(f"{S}/forwarders").json()["forwarders"]} == \
        {"from-file", "pay-only", "everything"}
    assert api(console, "audrey").request("DELETE", f"{S}/forwarders/pay-only").status == 403
    assert api(console, "payaud").request("DELETE", f"{S}/forwarders/pay-only").status == 403
    assert api(console, "web-1").get(f"{S}/forwarders").status == 403
    assert api(console, None).get(f"{S}/forwarders").status == 401
    assert put_json(api(console, "payadm"), f"{S}/namespaces/default", {"levels": "error"}).status == 403
    assert api(console, "payadm").get(f"{S}/namespaces/default").status == 404
    listed = api(console, "payadm").get(f"{S}/namespaces").json()
    assert listed["defaults"] is None
    assert [(n["namespace"], n["source"], n["levels"]) for n in listed["namespaces"]] == [("payments", "default", None)]
    everything = api(console, "audrey").get(f"{S}/namespaces").json()["namespaces"]
    assert [n["namespace"] for n in everything] == ["default", "fixed", "payments"]
    denials = search_json(console.collector, "--token-file", console.token_files["root"], "--action", "audit/denied",
                          "--namespace", "_collector", "--user", "payadm")
    assert any("/api/v1/settings/forwarders" in e["message"] for e in denials)
    for name in ("pay-only", "everything"):
        assert root.request("DELETE", f"{S}/forwarders/{name}").status == 200


# -- namespaces ---------------------------------------------------------------------------------

def test_namespace_level_raised_drops_events_below_it_live(console):
    payadm = api(console, "payadm")
    reply = put_json(payadm, f"{S}/namespaces/payments", {"levels": "error"})
    assert reply.status == 200, reply.text
    assert reply.json()["levels"] == "error" and reply.json()["source"] == "store"
    assert reply.json()["effective"]["levels"] == "error"
    write_lines(console.logs["pay-1"], ["2025-12-01T11:00:00.000Z WARNING user=dave below the new level",
                                        "2025-12-01T11:00:01.000Z ERROR user=dave at the new level"])
    cli = ("--token-file", console.token_files["root"], "--namespace", "payments", "--user", "dave",
           "--since", "2025-12-01T10:59:00Z")
    wait_for(lambda: len(search_json(console.collector, *cli)) == 1, 10, "the error line stored")
    assert [e["message"] for e in search_json(console.collector, *cli)] == ["user=dave at the new level"]
    event = audit(console, "settings/namespaces.create")[-1]
    assert event["user"] == "payadm" and event["fields"]["after"]["levels"] == "error"
    assert put_json(payadm, f"{S}/namespaces/payments", {}).status == 200


def test_namespace_dry_run_answers_the_effect_and_changes_nothing(console):
    root = api(console, "root")
    before = root.get(f"{S}/namespaces/default").json()
    reply = put_json(root, f"{S}/namespaces/default?dry_run=1", {"retention": {"general": "1d"}})
    assert reply.status == 200, reply.text
    # The agents' lines are dated 2025-12-01: all eight of namespace default are older than a day.
    assert reply.json()["effect"] == {"next_purge_removes": 8}
    assert root.get(f"{S}/namespaces/default").json() == before
    # The defaults: every namespace's general-tier events older than a day, but those of `fixed`
    # (its own general retention, from collector.toml).
    older = search_json(console.collector, "--token-file", console.token_files["root"], "--where", "tier=general",
                        "--until", "1d", "--limit", "0")
    expected = len([e for e in older if e["namespace"] != "fixed"])
    assert expected >= 8
    defaults = put_json(root, f"{S}/namespaces/*?dry_run=1", {"retention": {"general": "1d"}})
    assert defaults.json()["effect"] == {"next_purge_removes": expected}
    assert put_json(root, f"{S}/namespaces/fixed", {"levels": "error"}).status == 409
    bad = put_json(root, f"{S}/namespaces/default", {"retention": {"general": "soon"}})
    assert bad.status == 400 and bad.json()["error"].startswith("namespaces.default.retention.general: ")


# -- tokens -------------------------------------------------------------------------------------

def test_token_create_use_revoke(console):
    root = api(console, "root")
    made = root.post_json(f"{S}/tokens", {"name": "reader", "role": "auditor"})
    assert made.status == 201, made.text
    secret = made.json()["token"]
    assert made.json()["role"] == "auditor" and made.json()["source"] == "store"
    listed = {t["name"]: t for t in root.get(f"{S}/tokens").json()["tokens"]}
    assert "token" not in listed["reader"] and listed["root"]["source"] == "tokens_file"
    wait_for(lambda: Http(console.base, token=secret).get("/api/v1/status").status == 200, 30, "token works")
    event = audit(console, "settings/tokens.create")[-1]
    assert secret not in json.dumps(event) and hashlib.sha256(secret.encode()).hexdigest() not in json.dumps(event)
    assert root.request("DELETE", f"{S}/tokens/reader").status == 200
    wait_for(lambda: Http(console.base, token=secret).get("/api/v1/status").status == 401, 30, "token refused")
    session = Http(console.base)
    second = root.post_json(f"{S}/tokens", {"name": "signed-in", "role": "auditor"}).json()["token"]
    wait_for(lambda: session.post_form("/signin", {"token": second}).status in (302, 303), 30, "signed in")
    assert session.get("/api/v1/status").status == 200
    assert root.request("DELETE", f"{S}/tokens/signed-in").status == 200
    wait_for(lambda: session.get("/api/v1/status").status == 401, 30, "the revoked token's session ended")
    assert root.request("DELETE", f"{S}/tokens/root").status == 409
    assert root.post_json(f"{S}/tokens", {"name": "x", "role": "wizard"}).json()["error"].startswith(
        'tokens.role: expected "agent" or "admin"')


# -- every route, every role ----------------------------------------------------------------------

READ_ROUTES = [f"{S}/forwarders", f"{S}/forwarders/from-file", f"{S}/namespaces", f"{S}/namespaces/payments",
               f"{S}/tokens"]
CHANGES = [("POST", f"{S}/forwarders", {"name": "x", "type": "console"}),
           ("PUT", f"{S}/forwarders/from-file", {"type": "console"}),
           ("DELETE", f"{S}/forwarders/from-file", None),
           ("POST", f"{S}/forwarders/nothing/test", None),
           ("PUT", f"{S}/namespaces/default", {"levels": "error"}),
           ("POST", f"{S}/tokens", {"name": "x", "role": "admin"}),
           ("DELETE", f"{S}/tokens/root", None)]


def _send(client: Http, method: str, path: str, body: object) -> int:
    data = json.dumps(body).encode() if body is not None else None
    return client.request(method, path, data, {"Content-Type": "application/json"}).status


def test_every_route_refuses_no_credentials_and_agent_tokens(console):
    for path in READ_ROUTES:
        assert api(console, None).get(path).status == 401, path
        assert api(console, "web-1").get(path).status == 403, path
    for method, path, body in CHANGES:
        assert _send(api(console, None), method, path, body) == 401, (method, path)
        assert _send(api(console, "web-1"), method, path, body) == 403, (method, path)
        assert _send(Http(console.base, token="not-a-token"), method, path, body) == 401, (method, path)


def test_readers_read_and_change_nothing(console):
    for who in ("audrey", "payaud", "defaud"):
        for path in (f"{S}/forwarders", f"{S}/namespaces", f"{S}/tokens"):
            assert api(console, who).get(path).status == 200, (who, path)
        for method, path, body in CHANGES:
            status = _send(api(console, who), method, path, body)
            assert status in (403, 404, 409), (who, method, path, status)
            assert status != 200
    # auditors see every token (never a secret); a namespace-auditor only its namespaces' non-admin ones
    assert {t["name"] for t in api(console, "audrey").get(f"{S}/tokens").json()["tokens"]} >= {"root", "web-1", "pay-1"}
    assert {t["name"] for t in api(console, "payaud").get(f"{S}/tokens").json()["tokens"]} == {"pay-1", "payaud", "payadm"}
    assert api(console, "payaud").get(f"{S}/namespaces/payments").json()["namespace"] == "payments"
    assert api(console, "payaud").get(f"{S}/forwarders/from-file").status == 404


def test_admin_sees_read_only_entries_from_the_files(console):
    root = api(console, "root")
    fixed = root.get(f"{S}/namespaces/fixed").json()
    assert (fixed["source"], fixed["read_only"], fixed["retention"]["general"]) == ("collector.toml", True, "30d")
    assert fixed["effective"] == {"levels": "info", "retention": {"general": "30d", "security": "1y"}}
    defaults = root.get(f"{S}/namespaces").json()["defaults"]
    assert defaults["namespace"] == "*" and defaults["levels"] == "info"
    assert _send(root, "PUT", f"{S}/forwarders/from-file", {"type": "console"}) == 409
    assert _send(root, "DELETE", f"{S}/forwarders/from-file", None) == 409
    assert _send(root, "DELETE", f"{S}/tokens/root", None) == 409


def test_body_and_name_errors(console):
    root = api(console, "root")
    cases = [
        (root.request("POST", f"{S}/forwarders", b"{not json", {"Content-Type": "application/json"}),
         "body: not valid JSON"),
        (root.request("POST", f"{S}/forwarders", b"[1]", {"Content-Type": "application/json"}),
         "body: expected a JSON object"),
        (root.request("POST", f"{S}/forwarders", b" " * (65 * 1024), {"Content-Type": "application/json"}),
         "body: larger than 64 KiB"),
        (root.post_json(f"{S}/forwarders", {"name": "../etc", "type": "console"}),
         ("forwarders: name: '../etc' is not a valid name (letters, digits and _ . : @ -, at most 128 characters, "
         "starting with a letter or digit)")),
        (root.post_json(f"{S}/forwarders", {"name": "rel", "type": "file", "path": "out.jsonl"}),
         "forwarders.rel.path: must be an absolute path"),
        (root.post_json(f"{S}/forwarders", {"name": "inside", "type": "file",
                                            "path": console.collector.config["data_dir"] + "/events.db"}),
         "forwarders.inside.path: must be outside data_dir"),
        (root.post_json(f"{S}/forwarders", {"name": "tls", "type": "syslog", "protocol": "tls",
                                            "tls": {"ca": "/nonexistent/ca.pem"}}),
         "forwarders.tls.tls: cannot load certificates: No such file or directory"),
        (put_json(root, f"{S}/namespaces/default", {"levels": "loud"}), "namespaces.default.levels: "),
        (put_json(root, f"{S}/namespaces/default", {"level": "error"}), "namespaces.default.level: unknown key"),
        (put_json(root, f"{S}/namespaces/default", {"retention": {"general": "soon"}}),
         "namespaces.default.retention.general: "),
        (put_json(root, f"{S}/namespaces/default?dry_run=maybe", {}), "dry_run: expected 1 or 0, got 'maybe'"),
        (root.get(f"{S}/forwarders?colour=red"), "unknown query parameter 'colour'"),
        (root.post_json(f"{S}/tokens", {"name": "t", "role": "agent", "namespaces": ["_collector"]}),
         "tokens.t.namespaces: '_collector' holds the collector's own events"),
        (root.post_json(f"{S}/tokens", {"role": "agent"}), "tokens.name: required key is missing"),
        (root.post_json(f"{S}/tokens", {"name": "t", "role": "agent", "colour": 1}), "tokens.colour: unknown key"),
    ]
    for reply, message in cases:
        assert reply.status == 400, (message, reply.status, reply.text)
        assert reply.json()["error"].startswith(message) or message in reply.json()["error"], reply.json()["error"]
    names = [f["name"] for f in root.get(f"{S}/forwarders").json()["forwarders"]]
    assert names == ["from-file"]
    long = root.get(f"{S}/forwarders/{'a' * 4000}")
    assert long.status == 404 and long.json()["error"] == f"forwarders: no entry {'a' * 128!r}..."


def test_forwarder_test_through_a_file_forwarder(console, tmp_path):
    root = api(console, "root")
    out = tmp_path / "tested.jsonl"
    assert root.post_json(f"{S}/forwarders", {"name": "tested", "type": "file", "path": str(out),
                                              "log_types": ["nothing"]}).status == 201
    reply = root.post_json(f"{S}/forwarders/tested/test", {})
    assert reply.status == 200 and reply.json()["ok"] is True, reply.text
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(e["action"], e["user"]) for e in lines] == [("settings/forwarders.test", "root")]
    assert audit(console, "settings/forwarders.test")[-1]["fields"]["ok"] is True
    assert root.post_json(f"{S}/forwarders/nothing/test", {}).status == 404
    # Edited live: from now on it forwards the application lines (its cursor is past the older ones).
    edited = put_json(root, f"{S}/forwarders/tested", {"type": "file", "path": str(out), "log_types": ["application"]})
    assert edited.status == 200 and edited.json()["log_types"] == ["application"]
    write_lines(console.logs["web-2"], ["2025-12-01T12:00:00.000Z INFO user=erin forwarded after the edit"])

    def forwarded() -> list[str]:
        return [json.loads(line)["message"] for line in out.read_text().splitlines()[1:]]
    wait_for(forwarded, 10, "the new line forwarded")
    assert forwarded() == ["user=erin forwarded after the edit"]
    disabled = put_json(root, f"{S}/forwarders/tested", {"type": "file", "path": str(out), "enabled": False})
    assert disabled.status == 200 and disabled.json()["state"] == "disabled" and disabled.json()["enabled"] is False
    assert root.request("DELETE", f"{S}/forwarders/tested").status == 200


def test_audit_masks_secrets_in_bodies(console):
    root = api(console, "root")
    body = {"name": "masked", "type": "syslog", "protocol": "udp", "port": free_port(), "exclude": [{"field": "message", "pattern": "*password=hunter2*"}],
            "app_name": "token=s3cr3t-value"}
    assert root.post_json(f"{S}/forwarders", body).status == 201
    event = audit(console, "settings/forwarders.create")[-1]
    text = json.dumps(event)
    assert "hunter2" not in text and "s3cr3t-value" not in text
    assert event["fields"]["after"]["app_name"] == "token=***"
    assert root.request("DELETE", f"{S}/forwarders/masked").status == 200


def test_openapi_lists_the_settings_routes(console):
    doc = Http(console.base).get("/api/v1/openapi.json").json()
    assert {f"{S}/forwarders", f"{S}/forwarders/{{name}}", f"{S}/forwarders/{{name}}/test", f"{S}/namespaces",
            f"{S}/namespaces/{{namespace}}", f"{S}/tokens", f"{S}/tokens/{{name}}"} <= set(doc["paths"])
    assert set(doc["paths"][f"{S}/forwarders/{{name}}"]) == {"get", "put", "delete"}
