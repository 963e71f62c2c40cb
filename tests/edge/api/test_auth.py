import argparse
import logging
from datetime import timedelta

import pytest

from edge.cli import keys_command
from edge.config import EdgeConfig
from edge.storage.keys import KeyRefused, KeyStore
from edge.storage.tables import api_keys_table
from tests.edge.conftest import T0

REVIEW = {"verdict": "fail", "note": "hole near seam"}


def test_mutating_route_needs_a_key_of_the_right_role(api, add_unit, auth):
    unit = add_unit(T0)
    url = f"/api/v1/units/{unit.id}/review"
    res = api.post(url, json=REVIEW)
    assert res.status_code == 401 and "qc keys create" in res.json()["detail"]
    assert res.headers["www-authenticate"] == "Bearer"
    res = api.post(url, json=REVIEW, headers=auth["viewer"])
    assert res.status_code == 403 and "needs operator" in res.json()["detail"]
    assert api.post(url, json=REVIEW, headers=auth["operator"]).status_code == 200
    assert api.post(url, json=REVIEW, headers=auth["admin"]).status_code == 200  # admin >= operator
    lot = {"po": "PO1", "style": "S", "lot_size": 50}
    assert api.post("/api/v1/lots", json=lot).status_code == 401
    assert api.post("/api/v1/lots", json=lot, headers=auth["viewer"]).status_code == 403


def test_both_headers_work_and_bad_tokens_are_401(api, store, add_unit):
    unit = add_unit(T0)
    url = f"/api/v1/units/{unit.id}/review"
    token = store.keys.create("line-op", "operator")
    assert api.post(url, json=REVIEW, headers={"X-API-Key": token}).status_code == 200
    assert api.post(url, json=REVIEW, headers={"Authorization": f"bearer {token}"}).status_code == 200
    for bad in (token[:-1] + ("x" if token[-1] != "x" else "y"), "qc_nope_nope", "garbage", token + "x"):
        res = api.post(url, json=REVIEW, headers={"X-API-Key": bad})
        assert res.status_code == 401 and res.json()["detail"] == "the API key is unknown or revoked"
    store.keys.revoke("line-op")
    assert api.post(url, json=REVIEW, headers={"X-API-Key": token}).status_code == 401
    # Reads are open by default, but a key that is sent must be valid.
    assert api.get("/api/v1/units").status_code == 200
    assert api.get("/api/v1/units", headers={"X-API-Key": token}).status_code == 401


def test_reads_need_a_viewer_key_when_configured(make_client, add_unit, auth):
    config = EdgeConfig.model_validate({"api": {"require_keys": True}})
    client = make_client(config)
    unit = add_unit(T0)
    for path in ("/api/v1/units", f"/api/v1/units/{unit.id}", f"/api/v1/units/{unit.id}/image.jpg",
                 "/api/v1/summary", "/api/v1/lots", "/api/v1/units.csv"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers=auth["viewer"]).status_code == 200, path


# Open to anyone: liveness probes, the pages (their data comes from keyed routes), and the API's
# description, which is the same for every station (the pages link to it).
OPEN_ROUTES = {"/healthz", "/", "/manager", "/docs", "/docs/oauth2-redirect", "/redoc",
               "/openapi.json"}


def _read_routes(client, unit_id: str, lot_id: int) -> list[str]:
    """Every GET route the API describes, and /metrics, not open by design, with ids filled in."""
    schema = client.get("/openapi.json").json()
    paths = {p for p, methods in schema["paths"].items() if "get" in methods} | {"/metrics"}
    return sorted(p.replace("{unit_id}", unit_id).replace("{lot_id}", str(lot_id))
                  for p in paths - OPEN_ROUTES)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "station.local"])
def test_a_station_on_a_network_address_needs_keys_for_reads_by_default(
        host, make_client, add_unit, auth):
    client = make_client(EdgeConfig.model_validate({"api": {"host": host}}))
    unit = add_unit(T0)
    lot = client.post("/api/v1/lots", json={"po": "P", "style": "S", "lot_size": 9},
                      headers=auth["operator"]).json()
    reads = _read_routes(client, unit.id, lot["id"])
    assert "/metrics" in reads and "/api/v1/model" in reads and "/api/v1/units.csv" in reads
    for path in reads:
        res = client.get(path)
        assert res.status_code == 401, path
        assert "qc keys create" in res.json()["detail"], path
        assert client.get(path, headers=auth["viewer"]).status_code != 401, path
    for path in ("/healthz", "/", "/manager", "/docs", "/openapi.json"):
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "localhost", "::1"])
def test_a_loopback_station_serves_reads_without_a_key(host, make_client, add_unit):
    client = make_client(EdgeConfig.model_validate({"api": {"host": host}}))
    unit = add_unit(T0)
    for path in ("/api/v1/units", f"/api/v1/units/{unit.id}/image.jpg", "/metrics"):
        assert client.get(path).status_code == 200, path


def test_the_config_decides_in_so_many_words(make_client, add_unit, auth):
    unit = add_unit(T0)
    opened = make_client(EdgeConfig.model_validate({"api": {"host": "0.0.0.0",
                                                            "require_keys": False}}))
    keyed = make_client(EdgeConfig.model_validate({"api": {"host": "127.0.0.1",
                                                           "require_keys": True}}))
    for path in ("/api/v1/units", f"/api/v1/units/{unit.id}/overlay.png", "/metrics"):
        assert opened.get(path).status_code == 200, path
        assert keyed.get(path).status_code == 401, path
        assert keyed.get(path, headers=auth["viewer"]).status_code == 200, path
    assert EdgeConfig().api.require_keys == "auto"
    with pytest.raises(ValueError, match="require_keys"):
        EdgeConfig.model_validate({"api": {"require_keys": "sometimes"}})


def test_tokens_are_stored_hashed_with_a_salt_per_key(store):
    tokens = [store.keys.create("a", "viewer"), store.keys.create("b", "viewer")]
    with store.engine.connect() as conn:
        rows = conn.execute(api_keys_table.select()).mappings().all()
    assert len({r["salt"] for r in rows}) == 2
    for token, row in zip(tokens, rows):
        secret = token.split("_", 2)[2]
        assert len(secret) >= 40
        assert all(secret not in str(v) and token not in str(v) for v in row.values())
    store.engine.dispose()
    raw = b"".join(p.read_bytes() for p in store.data_dir.glob("qc.db*"))
    assert all(t.split("_", 2)[2].encode() not in raw for t in tokens)
    assert store.keys.verify(tokens[0]).name == "a"


def test_key_names_and_roles_are_checked(store):
    store.keys.create("ops", "operator")
    with pytest.raises(KeyRefused, match="already|exists"):
        store.keys.create("ops", "admin")
    with pytest.raises(KeyRefused, match="role 'root'"):
        store.keys.create("x", "root")
    with pytest.raises(KeyRefused, match="no active key"):
        store.keys.revoke("nobody")
    store.keys.revoke("ops")
    assert store.keys.create("ops", "admin")  # the name is free again once revoked
    assert sorted((k.name, k.role, k.revoked_at is None) for k in store.keys.list()) == [
        ("ops", "admin", True), ("ops", "operator", False)]


def test_admin_manages_keys_over_the_api(api, auth):
    body = {"name": "night-shift", "role": "operator"}
    assert api.post("/api/v1/keys", json=body, headers=auth["operator"]).status_code == 403
    res = api.post("/api/v1/keys", json=body, headers=auth["admin"])
    assert res.status_code == 201
    token = res.json()["token"]
    listed = api.get("/api/v1/keys", headers=auth["admin"]).json()
    assert "night-shift" in [k["name"] for k in listed] and token not in str(listed)
    assert api.post("/api/v1/keys", json=body, headers=auth["admin"]).status_code == 409
    assert api.delete("/api/v1/keys/night-shift", headers=auth["admin"]).status_code == 204
    assert api.delete("/api/v1/keys/night-shift", headers=auth["admin"]).status_code == 404
    assert api.post("/api/v1/lots", json={"po": "P", "style": "S", "lot_size": 9},
                    headers={"X-API-Key": token}).status_code == 401


def test_keys_command_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'station' / 'qc.db'}"
    lines: list[str] = []

    def run(*argv):
        lines.clear()
        action, *rest = argv
        ns = argparse.Namespace(database_url=url, action=action, name=rest[0] if rest else None,
                                role=rest[1] if len(rest) > 1 else "viewer")
        return keys_command(ns, out=lines.append)

    assert run("create", "alice", "admin") == 0
    token = lines[-1]
    assert token.startswith("qc_") and "alice" in lines[0]
    assert run("list") == 0 and "alice\tadmin" in lines[0] and token not in "".join(lines)
    assert run("create", "alice", "viewer") == 2 and "revoke it first" in lines[0]
    assert run("revoke", "alice") == 0
    assert run("revoke", "alice") == 2
    from edge.storage.engine import open_engine
    engine = open_engine(url)
    assert KeyStore(engine).verify(token) is None
    engine.dispose()


def test_cors_is_off_unless_origins_are_named(make_client):
    origin = {"Origin": "http://evil.example"}
    assert "access-control-allow-origin" not in make_client().get("/api/v1/units", headers=origin).headers
    config = EdgeConfig.model_validate({"api": {"cors_origins": ["http://qc.example"]}})
    res = make_client(config).get("/api/v1/units", headers={"Origin": "http://qc.example"})
    assert res.headers["access-control-allow-origin"] == "http://qc.example"


def test_no_secret_in_the_logs(api, store, add_unit, caplog):
    unit = add_unit(T0 + timedelta(seconds=1))
    token = store.keys.create("op", "operator")
    with caplog.at_level(logging.DEBUG):
        api.post(f"/api/v1/units/{unit.id}/review", json=REVIEW, headers={"X-API-Key": token})
        api.post(f"/api/v1/units/{unit.id}/review", json=REVIEW, headers={"X-API-Key": token + "z"})
    assert token.split("_", 2)[2] not in caplog.text
