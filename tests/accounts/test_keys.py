"""Keys: hashes only, constant-time check, revoke/rotate at once, admin scope, the CLI."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from accounts.helpers import Client, bearer
from sticker_maker.cli.main import app as cli_app
from sticker_maker.db import api_keys


def test_only_the_hash_is_stored(client: Client) -> None:
    secret = client.new_key()
    key_id = secret.split("_")[1]
    with client.svc.db.read() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().one()
    assert secret not in [str(v) for v in row.values()]
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()


def test_revoked_key_gets_401_at_once(client: Client) -> None:
    secret = client.new_key()
    assert client.get("/v1/account", headers=bearer(secret)).status_code == 200
    client.svc.keys.revoke(secret.split("_")[1])
    for r in (
        client.get("/v1/account", headers=bearer(secret)),
        client.submit(secret),
        client.get("/api/v1/result", params={"tid": "x"}, headers={"apikey": secret}),
    ):
        assert r.status_code == 401
    assert "revoked" in client.get("/v1/account", headers=bearer(secret)).json()["error"]["message"]


def test_revoke_applies_across_processes(make_client, tmp_path) -> None:
    home = tmp_path / "shared"
    first: Client = make_client(home=home)
    second: Client = make_client(home=home)
    secret = first.new_key()
    assert second.get("/v1/account", headers=bearer(secret)).status_code == 200
    first.svc.keys.revoke(secret.split("_")[1])
    assert second.get("/v1/account", headers=bearer(secret)).status_code == 401


def test_admin_api_manages_keys_and_user_keys_get_403(client: Client) -> None:
    admin = client.svc.keys.create(scope="admin").secret
    user = client.new_key(credits=5)
    for method, path in [
        ("get", "/v1/keys"),
        ("post", "/v1/keys"),
        ("post", f"/v1/keys/{user.split('_')[1]}/revoke"),
    ]:
        r = client.request(method.upper(), path, headers=bearer(user), json={})
        assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"

    made = client.post(
        "/v1/keys",
        headers=bearer(admin),
        json={"label": "team", "credits": 50, "max_active_jobs": 3},
    )
    assert made.status_code == 201, made.text
    new_secret, info = made.json()["secret"], made.json()["key"]
    assert info["balance"] == 50 and info["limits"]["max_active_jobs"] == 3
    assert info["prefix"] == "sm_" + info["id"] and new_secret.startswith(info["prefix"] + "_")

    listed = client.get("/v1/keys", headers=bearer(admin)).json()["keys"]
    assert {k["label"] for k in listed} >= {"team"}
    assert all("secret" not in k and "secret_hash" not in k for k in listed)

    granted = client.post(
        f"/v1/keys/{info['prefix']}/grant", headers=bearer(admin), json={"credits": 25}
    )
    assert granted.json()["key"]["balance"] == 75
    too_much = client.post(
        f"/v1/keys/{info['id']}/grant", headers=bearer(admin), json={"credits": -100}
    )
    assert too_much.status_code == 400 and "negative" in too_much.json()["error"]["message"]

    rotated = client.post(f"/v1/keys/{info['id']}/rotate", headers=bearer(admin)).json()
    assert client.get("/v1/account", headers=bearer(new_secret)).status_code == 401
    after = client.get("/v1/account", headers=bearer(rotated["secret"])).json()
    assert after["balance"] == 75 and after["key"]["id"] == info["id"]

    client.post(f"/v1/keys/{info['id']}/revoke", headers=bearer(admin))
    assert client.get("/v1/account", headers=bearer(rotated["secret"])).status_code == 401
    assert info["id"] not in {
        k["id"] for k in client.get("/v1/keys", headers=bearer(admin)).json()["keys"]
    }
    assert client.get("/v1/keys/sm_zzzzzzzz", headers=bearer(admin)).status_code == 404


def test_account_shows_balance_limits_and_webhook_secret(client: Client) -> None:
    secret = client.new_key(credits=12, requests_per_minute=100)
    body = client.get("/v1/account", headers=bearer(secret)).json()
    assert body["balance"] == 12 and body["reserved"] == 0 and body["active_jobs"] == 0
    assert body["limits"]["requests_per_minute"] == 100
    assert body["webhook_secret"].startswith("whsec_")
    assert body["usage"][0]["kind"] == "grant" and body["usage"][0]["amount"] == 12


@pytest.fixture
def run_cli(tmp_path):
    runner = CliRunner()
    home = str(tmp_path / "cli-home")

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(cli_app, [*args, "--home", home])
        return result.exit_code, result.stdout, result.stderr

    return run


def test_cli_keys_lifecycle(run_cli) -> None:
    code, admin, err = run_cli("keys", "create", "--admin", "--label", "ops")
    assert code == 0 and admin.strip().startswith("sm_") and "admin key" in err
    code, user, _ = run_cli("keys", "create", "--credits", "10", "--label", "alice")
    user = user.strip()
    prefix = "sm_" + user.split("_")[1]
    code, out, _ = run_cli("keys", "grant", prefix, "5", "--note", "bonus")
    assert code == 0 and out.strip() == "15"
    code, out, _ = run_cli("keys", "list")
    assert code == 0 and prefix in out and "alice" in out and "15.0000" in out
    assert user not in out  # never the secret
    code, rotated, _ = run_cli("keys", "rotate", prefix)
    assert code == 0 and rotated.strip() != user and rotated.strip().startswith(prefix)
    code, _, err = run_cli("keys", "limits", prefix, "--max-active-jobs", "2")
    assert code == 0 and "max_active_jobs=2" in err
    code, _, err = run_cli("keys", "revoke", prefix)
    assert code == 0 and "Revoked" in err
    code, out, _ = run_cli("keys", "list")
    assert prefix not in out
    code, out, _ = run_cli("keys", "list", "--all")
    assert prefix in out
    code, _, err = run_cli("keys", "revoke", "sm_nothere")
    assert code == 1 and "no API key" in err


def test_serve_flags_reach_the_settings(monkeypatch, tmp_path) -> None:
    import uvicorn

    captured = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: captured.setdefault("app", app))
    args = ["serve", "--home", str(tmp_path), "--no-worker", "--max-queue-depth", "5"]
    args += ["--retention", "60", "--max-active-jobs", "2", "--submits-per-minute", "9"]
    args += ["--requests-per-minute", "99", "--webhook-allow-network", "10.0.0.0/8"]
    result = CliRunner().invoke(cli_app, [*args, "--webhook-allow-network", "127.0.0.1/32"])
    assert result.exit_code == 0, result.output
    s = captured["app"].state.services.settings
    assert (s.max_queue_depth, s.retention_seconds, s.max_active_jobs) == (5, 60.0, 2)
    assert (s.submits_per_minute, s.requests_per_minute) == (9, 99)
    assert s.webhook_allow_networks == ("10.0.0.0/8", "127.0.0.1/32")


def test_keys_are_compared_in_constant_time(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Every check, known id or not, right secret or not, goes through one
    ``hmac.compare_digest`` of two SHA-256 hex digests (no early ``==`` exit)."""
    import hmac

    from sticker_maker.accounts import KeyStore
    from sticker_maker.accounts import keys as keys_module
    from sticker_maker.db import Database
    from sticker_maker.errors import AuthenticationError

    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    db.upgrade()
    store = KeyStore(db)
    secret = store.create().secret
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", spy)
    wrong = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    unknown = "sm_Zz999999_" + secret.split("_", 2)[2]
    assert store.authenticate(secret).id == secret.split("_")[1]
    for bad in (wrong, unknown):
        with pytest.raises(AuthenticationError):
            store.authenticate(bad)
    assert len(calls) == 3
    assert all(len(a) == len(b) == 64 for a, b in calls)
    db.dispose()
