"""Limits: per-key rates and jobs in flight, a global queue cap; held in the database."""

from __future__ import annotations

from datetime import datetime

import pytest

from accounts.helpers import Client, bearer


def test_thirty_rapid_submits_against_a_limit_of_ten(make_client) -> None:
    client: Client = make_client(submits_per_minute=10)
    key = client.new_key()
    answers = [client.submit(key) for _ in range(30)]
    assert [r.status_code for r in answers] == [201] * 10 + [429] * 20
    for r in answers[10:]:
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        error = r.json()["error"]
        assert (
            error["code"] == "rate_limited" and "10 job submissions per minute" in error["message"]
        )
    jobs = client.get("/v1/jobs", headers=bearer(key)).json()["jobs"]
    assert len(jobs) == 10  # no job was created for a refused submit
    # and no credits were held for them either
    account = client.get("/v1/account", headers=bearer(key)).json()
    assert account["reserved"] == pytest.approx(10 * (30 + 20 * 64 * 64 / 1024**2))
    # the limit is per key: another key is not affected
    assert client.submit(client.new_key()).status_code == 201


def test_per_key_override_beats_the_service_default(make_client) -> None:
    client: Client = make_client(submits_per_minute=2)
    roomy = client.new_key(submits_per_minute=5)
    assert [client.submit(roomy).status_code for _ in range(6)] == [201] * 5 + [429]


def test_requests_per_minute_counts_every_authenticated_request(make_client) -> None:
    client: Client = make_client(requests_per_minute=10)
    key = client.new_key()
    codes = [client.get("/v1/jobs", headers=bearer(key)).status_code for _ in range(25)]
    assert codes.count(200) <= 20 and codes.count(429) >= 5  # a window edge may let ≤ 2x pass
    assert codes[:10] == [200] * 10
    limited = client.get("/v1/account", headers=bearer(key))
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


def test_rate_limit_holds_across_processes_sharing_the_database(make_client, tmp_path) -> None:
    home = tmp_path / "shared"
    first: Client = make_client(home=home, submits_per_minute=4)
    second: Client = make_client(home=home, submits_per_minute=4)
    key = first.new_key()
    codes = [(first if i % 2 else second).submit(key).status_code for i in range(8)]
    assert codes == [201] * 4 + [429] * 4


def test_jobs_in_flight_per_key(make_client) -> None:
    client: Client = make_client(max_active_jobs=2)
    key = client.new_key()
    assert [client.submit(key).status_code for _ in range(3)] == [201, 201, 429]
    refused = client.submit(key)
    assert "2 jobs queued or running" in refused.json()["error"]["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    client.run_next()  # one finishes: room for one more
    assert client.submit(key).status_code == 201


def test_global_queue_cap_is_503(make_client) -> None:
    client: Client = make_client(max_queue_depth=3)
    keys = [client.new_key() for _ in range(4)]
    assert [client.submit(k).status_code for k in keys] == [201, 201, 201, 503]
    busy = client.post(
        "/api/v1/generate",
        headers={"apikey": keys[3]},
        json={"mid": 3123, "input": {"prompt": "x"}},
    )
    assert busy.status_code == 503 and busy.json()["status_code"] == "error"
    assert int(busy.headers["Retry-After"]) >= 1


def test_segmind_routes_get_the_reset_header(make_client) -> None:
    client: Client = make_client(requests_per_minute=1)
    key = client.new_key()
    body = {"prompt": "x"}
    assert client.post("/v2/stickersheet", headers={"x-api-key": key}, json=body).status_code == 200
    limited = client.post("/v2/stickersheet", headers={"x-api-key": key}, json=body)
    assert limited.status_code == 429
    assert set(limited.json()) == {"error"}
    reset = limited.headers["x-rate-limit-reset-at-utc"]
    assert reset.endswith("Z") and datetime.fromisoformat(reset.replace("Z", "+00:00"))
    assert int(limited.headers["Retry-After"]) >= 1


def test_limits_come_from_flags_then_environment_then_defaults(monkeypatch, tmp_path) -> None:
    from sticker_maker.config import Settings
    from sticker_maker.errors import InvalidInput

    monkeypatch.setenv("STICKER_MAKER_MAX_QUEUE_DEPTH", "7")
    monkeypatch.setenv("STICKER_MAKER_WEBHOOK_ALLOW_NETWORKS", "10.0.0.0/8, 127.0.0.1/32")
    settings = Settings.load(tmp_path, max_active_jobs=3, max_queue_depth=None)
    assert (settings.max_queue_depth, settings.max_active_jobs) == (7, 3)
    assert settings.webhook_allow_networks == ("10.0.0.0/8", "127.0.0.1/32")
    assert Settings.load(tmp_path, max_queue_depth=9).max_queue_depth == 9
    assert Settings.load(tmp_path).submits_per_minute == 120
    monkeypatch.setenv("STICKER_MAKER_WEBHOOK_ALLOW_NETWORKS", "10.0.0.0/33")
    with pytest.raises(InvalidInput, match="CIDR"):
        Settings.load(tmp_path)
    monkeypatch.setenv("STICKER_MAKER_REQUESTS_PER_MINUTE", "lots")
    monkeypatch.delenv("STICKER_MAKER_WEBHOOK_ALLOW_NETWORKS")
    with pytest.raises(InvalidInput, match="must be a number"):
        Settings.load(tmp_path)


def test_request_counts_are_shared_by_api_processes_on_one_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two API processes (two counters, two connections to one database) on a fake clock:
    the second sees the first's requests and refuses exactly the one over the limit."""
    from types import SimpleNamespace

    from sticker_maker.accounts import KeyStore
    from sticker_maker.accounts.limits import FLUSH_EVERY, WINDOW, RequestCounter
    from sticker_maker.db import Database
    from sticker_maker.errors import RateLimited

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first_db, second_db = Database(url), Database(url)
    first_db.upgrade()
    key = KeyStore(first_db).create().key
    settings = SimpleNamespace(requests_per_minute=10)
    first, second = RequestCounter(first_db), RequestCounter(second_db)
    start = 1_000 * WINDOW + 1.0  # one minute window, no earlier minute to weigh in
    for i in range(6):  # spaced so that each is written to the database
        first.count(key, settings, now=start + i * FLUSH_EVERY * 1.2)
    later = start + 10
    for i in range(4):  # 6 + 4 = 10: the limit
        second.count(key, settings, now=later + i * FLUSH_EVERY * 1.2)
    with pytest.raises(RateLimited):
        second.count(key, settings, now=later + 4 * FLUSH_EVERY * 1.2)
    first_db.dispose()
    second_db.dispose()
