"""Denials must not flood the security tier: 200 requests with a bad bearer token on varying paths
stored 200 `audit/denied` events (1-year tier) in 0.4 s, because the once-per-10 s rule keyed on
the raw path. Now a denial is keyed on the route, reason and peer, an address gets at most 5
stored per 10 s, failed authentications are limited per address (30 per minute, then 429 /
RESOURCE_EXHAUSTED without checking), and what is left out is counted.

Each scenario runs well within the 10 s interval (200 loopback requests take about a second),
which the exact counts rely on."""

from __future__ import annotations

import http.client
import json

import grpc

from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2_grpc as pb_grpc
from tests.harness import free_port, search_json
from tests.web_console import Http, write_tokens

NOT_RECORDED = "fleetlog_collector_denials_not_recorded_total"
TOO_MANY = "too many failed authentications from this address"


def _get_from(source_ip: str, port: int, path: str, token: str) -> tuple[int, dict, str]:
    """One request to the console from `source_ip` (another loopback address: another peer)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source_ip, 0))
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def _denied(collector, token_file: str) -> list[dict]:
    return search_json(collector, "--action", "audit/denied", "--token-file", token_file)


def test_200_bad_tokens_on_varying_paths_store_five_denials_and_count_the_rest(cluster, tmp_path):
    tokens_file, tokens, files = write_tokens(tmp_path)
    port = free_port()
    collector = cluster.collector(tokens_file=tokens_file, web={"listen": f"127.0.0.1:{port}"})
    paths = [lambda i: f"/api/v1/trace/guess-{i}", lambda i: f"/trace/guess-{i}", lambda i: f"/api/v1/events?user=u{i}"]
    statuses = []
    for i in range(200):
        status, headers, _body = _get_from("127.0.0.2", port, paths[i % 3](i), f"bad-token-{i}")
        statuses.append(status)
        if status == 429:
            assert 1 <= int(headers["Retry-After"]) <= 60
    assert statuses == [401] * 30 + [429] * 170
    # The peer is refused unchecked: a valid token from it gets 429 too, other addresses are served.
    assert _get_from("127.0.0.2", port, "/api/v1/status", tokens["root"])[0] == 429
    assert Http(f"http://127.0.0.1:{port}", token=tokens["root"]).get("/api/v1/status").status == 200
    # 3 routes x "unknown token", then the first 2 of "too many" before the address's 5 per 10 s.
    # Left out: 27 repeats of unknown token, then 168 + 1 refusals.
    assert collector.metric(NOT_RECORDED) == 27 + 169
    stored = [(e["message"], e["fields"].get("repeats_not_recorded"), e["fields"]["path"])
              for e in _denied(collector, files["root"])]
    assert stored == [
        ("denied web GET /api/v1/trace/{request_id} for unauthenticated peer: unknown token", None,
         "/api/v1/trace/guess-0"),
        ("denied web GET /trace/{request_id} for unauthenticated peer: unknown token", None, "/trace/guess-1"),
        ("denied web GET /api/v1/events for unauthenticated peer: unknown token", None, "/api/v1/events"),
        (f"denied web GET /api/v1/trace/{{request_id}} for unauthenticated peer: {TOO_MANY}", 27,
         "/api/v1/trace/guess-30"),
        (f"denied web GET /trace/{{request_id}} for unauthenticated peer: {TOO_MANY}", None, "/trace/guess-31"),
    ]
    assert "bad-token" not in json.dumps(_denied(collector, files["root"]))


def test_grpc_failures_are_limited_per_address_and_shared_with_the_console(cluster, tmp_path):
    tokens_file, tokens, files = write_tokens(tmp_path)
    port = free_port()
    collector = cluster.collector(tokens_file=tokens_file, web={"listen": f"127.0.0.1:{port}"})
    codes = []
    with grpc.insecure_channel(collector.address) as channel:
        stub = pb_grpc.QueryStub(channel)

        def status(token: str) -> grpc.StatusCode:
            try:
                stub.Status(pb.StatusRequest(), metadata=[("authorization", f"Bearer {token}")], timeout=20)
            except grpc.RpcError as exc:
                assert exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or TOO_MANY in exc.details()
                return exc.code()
            return grpc.StatusCode.OK
        codes = [status(f"bad-{i}") for i in range(50)]
        assert status(tokens["root"]) == grpc.StatusCode.RESOURCE_EXHAUSTED   # unchecked
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 30 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 20
    # The console on the same address is refused too.
    reply = Http(f"http://127.0.0.1:{port}", token=tokens["root"]).get("/api/v1/status")
    assert reply.status == 429 and reply.json()["error"].startswith(TOO_MANY)
    # Left out: 29 repeats of unknown token, 19 + 1 of "too many" (gRPC status).
    assert collector.metric(NOT_RECORDED) == 29 + 20
    # The address stays refused for up to a minute; a restart forgets it (the count is in memory).
    collector.stop()
    collector.start().wait_ready()
    stored = [(e["message"], e["fields"].get("repeats_not_recorded")) for e in _denied(collector, files["root"])]
    assert stored == [
        ("denied status for unauthenticated peer: unknown token", None),
        (f"denied status for unauthenticated peer: {TOO_MANY}", 29),
        (f"denied web GET /api/v1/status for unauthenticated peer: {TOO_MANY}", 20),
    ]
