"""Idempotency-Key on native submits: replay, 409 in flight, 422 on another body."""

from __future__ import annotations

from accounts.helpers import Client, bearer
from sticker_maker.accounts.idempotency import request_hash


def post(client: Client, key: str, idem: str, **fields) -> object:
    body = {"prompt": "cute cat", "width": 64, "height": 64, **fields}
    return client.post("/v1/jobs", headers={**bearer(key), "Idempotency-Key": idem}, json=body)


def test_same_key_and_body_replays_the_first_response(client: Client) -> None:
    key = client.new_key()
    first = post(client, key, "order-1")
    again = post(client, key, "order-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert len(client.get("/v1/jobs", headers=bearer(key)).json()["jobs"]) == 1
    # charged once
    assert client.get("/v1/account", headers=bearer(key)).json()["reserved"] > 0
    reserves = [
        u
        for u in client.get("/v1/account", headers=bearer(key)).json()["usage"]
        if u["kind"] == "reserve"
    ]
    assert len(reserves) == 1


def test_different_body_is_422(client: Client) -> None:
    key = client.new_key()
    assert post(client, key, "k").status_code == 201
    r = post(client, key, "k", prompt="a dog")
    assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency_key_reused"


def test_in_flight_is_409(client: Client) -> None:
    key = client.new_key()
    body = {"prompt": "cute cat", "width": 64, "height": 64}
    from sticker_maker.api.native import JobRequest

    digest = request_hash(JobRequest(**body).model_dump(mode="json"))
    assert client.svc.idempotency.begin(key.split("_")[1], "busy", digest) is None  # "in flight"
    r = post(client, key, "busy")
    assert r.status_code == 409 and "in progress" in r.json()["error"]["message"]


def test_keys_are_scoped_per_api_key_and_failures_release_them(client: Client) -> None:
    alice, bob = client.new_key(), client.new_key(credits=1)
    a = post(client, alice, "same")
    assert post(client, bob, "same").status_code == 406  # bob's own key, own (failed) attempt
    client.svc.keys.grant(bob.split("_")[1], 100)
    b = post(client, bob, "same")  # the failure released the key: the retry runs
    assert b.status_code == 201 and b.json()["id"] != a.json()["id"]
    assert post(client, alice, "x" * 300).status_code == 400
