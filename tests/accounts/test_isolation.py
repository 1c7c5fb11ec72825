"""Isolation: a key sees only its own jobs and files; anything else is 404."""

from __future__ import annotations

from accounts.helpers import PNG, Client, bearer


def test_two_keys_cannot_see_each_others_jobs_or_files(client: Client) -> None:
    alice, bob = client.new_key(), client.new_key()
    job_id = client.submit(alice).json()["id"]
    done = client.run_next()
    assert done.id == job_id
    tid = client.post(
        "/api/v1/generate", headers={"apikey": alice}, json={"mid": 3123, "input": {"prompt": "x"}}
    ).json()["data"]["tid"]

    # jobs: 404 (never 403) for bob, in every API and verb
    for r in (
        client.get(f"/v1/jobs/{job_id}", headers=bearer(bob)),
        client.post(f"/v1/jobs/{tid}/cancel", headers=bearer(bob)),
        client.get("/api/v1/result", params={"tid": tid}, headers={"apikey": bob}),
    ):
        assert r.status_code == 404, r.text
    assert client.get("/v1/jobs", headers=bearer(bob)).json()["jobs"] == []
    assert client.get(f"/v1/jobs/{tid}", headers=bearer(alice)).json()["status"] == "queued"

    # files: the owner (with or without credentials) gets them; bob's credentials get 404
    urls = [
        o["url"] for o in client.get(f"/v1/jobs/{job_id}", headers=bearer(alice)).json()["output"]
    ]
    assert len(urls) == 2
    for url in urls:
        path = url.removeprefix("http://testserver")
        assert client.get(path).content == PNG  # a capability URL: plain GET works
        assert client.get(path, headers=bearer(alice)).status_code == 200
        other = client.get(path, headers={"x-api-key": bob})
        assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
        assert client.get(path, headers=bearer("sm_garbage")).status_code == 401

    # bob's cancel did nothing
    assert client.get(f"/v1/jobs/{tid}", headers=bearer(alice)).json()["status"] == "queued"


def test_file_names_are_unguessable_and_checked(client: Client) -> None:
    for name in ("../sticker-maker.db", "short.png", "a" * 40 + ".exe", "%00" * 20 + ".png"):
        assert client.get(f"/files/{name}").status_code == 404
