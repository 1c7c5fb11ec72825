"""The PostgreSQL the tests use (tests/pg.py): one variable, reasons, a failure in CI."""

from __future__ import annotations

import socket
import uuid

import pg
import pytest
from sqlalchemy.engine import make_url


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_that_is_not_there_is_reported_as_not_reachable() -> None:
    reason = pg.problem(f"postgresql://postgres@127.0.0.1:{_closed_port()}/test")
    assert reason is not None and "not reachable" in reason and pg.ENV in reason


def test_a_refused_login_is_reported_as_such_not_as_unreachable() -> None:
    server = pg.require()
    url = make_url(server).set(username="no_such_role_sm").render_as_string(hide_password=False)
    reason = pg.problem(url)
    assert reason is not None
    assert reason.startswith("login to PostgreSQL") and "no_such_role_sm" in reason
    assert "not reachable" not in reason


def test_a_missing_database_is_named_and_ensure_database_creates_it() -> None:
    server = pg.require()
    name = f"sm_missing_{uuid.uuid4().hex[:10]}"
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        reason = pg.problem(url)
        assert reason is not None and f'database "{name}" does not exist' in reason
        assert "createdb" in reason
        assert pg.ensure_database(url) is True
        assert pg.problem(url) is None
        assert pg.ensure_database(url) is False  # already there: nothing to do
    finally:
        pg.drop_database(url)


def test_one_variable_names_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/test"
    monkeypatch.setenv("STICKER_MAKER_TEST_POSTGRES", url)
    monkeypatch.delenv("CI", raising=False)
    assert pg.server_url() == url
    with pytest.raises(pytest.skip.Exception, match="not reachable"):
        pg.require()


@pytest.mark.parametrize("value", ["true", "1", "TRUE"])
def test_in_ci_an_unusable_server_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(
        "STICKER_MAKER_TEST_POSTGRES", f"postgresql://x@127.0.0.1:{_closed_port()}/t"
    )
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"CI=true and PostgreSQL at .* not reachable"):
        pg.require()
