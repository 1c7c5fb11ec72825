"""The Noto artwork the tests use is in the repository, small, licensed and described."""

from __future__ import annotations

import json

import pytest

from .helpers import REPO, noto_path

DATA = REPO / "tests" / "data" / "stickers-noto"


def test_the_tests_read_the_noto_subset_in_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STICKER_MAKER_NOTO_DATA", raising=False)
    assert noto_path() == DATA
    assert (DATA / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert "Apache-2.0" in (DATA / "README.md").read_text()


def test_each_manifest_lists_exactly_the_cases_present_and_the_subset_stays_small() -> None:
    for folder, key in (("composite", "case"), ("sheet", "sheet"), ("sheet-outlined", "sheet")):
        manifest = json.loads((DATA / folder / "manifest.json").read_text())
        listed = {c[key] for c in manifest["cases"]}
        present = {p.name.split("_")[0].removesuffix(".png") for p in (DATA / folder).glob("*.png")}
        assert listed == present, folder
        assert manifest["license"].startswith("Apache-2.0")
    size = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert size <= 4 * 2**20  # the repo travels to GPU machines under a size cap
