"""The prompt check on its own: the labelled set, normalisation, levels, operator lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from sticker_maker.errors import ContentBlocked, InvalidInput
from sticker_maker.safety import PromptScreen, SafetySettings, effective
from sticker_maker.safety.normalize import fold, views
from sticker_maker.safety.terms import default_text, parse

HERE = Path(__file__).parent


def labelled(name: str) -> list[str]:
    lines = (HERE / name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


PASS = labelled("labelled_pass.txt")
BLOCK = labelled("labelled_block.txt")


@pytest.fixture(scope="module")
def screen() -> PromptScreen:
    return PromptScreen.from_settings(SafetySettings())


def test_labelled_set_has_no_false_positive_and_no_false_negative(screen: PromptScreen) -> None:
    assert len(PASS) >= 150 and len(BLOCK) >= 150
    false_positives = [p for p in PASS if screen.findings(p).refusal("standard")]
    false_negatives = [p for p in BLOCK if not screen.findings(p).refusal("standard")]
    assert false_positives == []
    assert false_negatives == []


@pytest.mark.parametrize(
    "word", ["Sussex", "cocktail", "Scunthorpe", "analysis", "therapist", "assassin"]
)
def test_the_issue_traps_pass_alone_and_in_a_sentence(screen: PromptScreen, word: str) -> None:
    assert screen.findings(word).categories == frozenset()
    assert screen.findings(f"a sticker about {word}, cute style").refusal("strict") is None


@pytest.mark.parametrize(
    "disguised",
    [
        "N.U.D.E",  # punctuation between letters
        "n u d e",  # spaces between letters
        "nu.de",  # punctuation inside the word
        "NuDe",  # case
        "n\u00fcde",  # accent
        "n\u0430ked",  # Cyrillic a
        "\uff4e\uff55\uff44\uff45",  # fullwidth
        "\U0001d427\U0001d42e\U0001d41d\U0001d41e",  # mathematical bold
        "n\u200bude",  # zero-width space
        "p0rn",  # leetspeak digit
        "pu$$y pic",  # leetspeak symbols
        "t1tties",  # 1 read as i
        "nuuuude",  # stretched
    ],
)
def test_disguises_are_seen_through(screen: PromptScreen, disguised: str) -> None:
    assert screen.findings(disguised).refusal("standard") == "sexual"


def test_normalisation_keeps_innocent_text_readable() -> None:
    assert fold("Caf\u00e9 \uff23\uff21\uff34") == "cafe cat"
    assert views("a b c blocks").words == ["abc", "blocks"]
    assert views("x-ray t-shirt").extra == ["xray", "tshirt"]
    assert views("a n u d e").words == ["anude"] and "nude" in views("a n u d e").extra
    # a letter run of two stays two words; numbers stay numbers
    assert views("plan b 1024").words == ["plan", "b", "1024"]


def test_levels_relax_and_tighten(screen: PromptScreen) -> None:
    adult = screen.findings("a nude woman")
    minors = screen.findings("sexy schoolgirl")  # child word + suggestive word
    violence = screen.findings("rape scene")
    suggestive = screen.findings("a sexy red sports car")
    assert [adult.refusal(level) for level in ("off", "relaxed", "standard", "strict")] == [
        None,
        None,
        "sexual",
        "sexual",
    ]
    assert [minors.refusal(level) for level in ("off", "relaxed", "standard")] == [
        None,
        "minors",
        "minors",
    ]
    assert violence.refusal("relaxed") == "sexual_violence"
    assert suggestive.refusal("standard") is None and suggestive.refusal("strict") == "suggestive"
    # a child word alone is never refused
    assert screen.findings("a little girl with a kite").refusal("strict") is None


def test_a_preset_makes_a_key_stricter_never_looser() -> None:
    assert effective(None, None, "standard") == "standard"
    assert effective("relaxed", "strict", "standard") == "strict"
    assert effective("strict", "relaxed", "standard") == "strict"
    assert effective("off", None, "standard") == "off"


def test_operator_block_and_allow_lists_from_files_and_environment(tmp_path: Path) -> None:
    block = tmp_path / "block.txt"
    block.write_text("# our own words\nbrand x\ngoblin*\n[sexual]\nspicy pic\n")
    allow = tmp_path / "allow.txt"
    allow.write_text("nude palette shop\n")
    settings = SafetySettings.from_env(
        {
            "STICKER_MAKER_SAFETY_BLOCK_FILES": str(block),
            "STICKER_MAKER_SAFETY_ALLOW_FILES": str(allow),
            "STICKER_MAKER_SAFETY_BLOCK_TERMS": "wombat, zebra crossing",
            "STICKER_MAKER_SAFETY_ALLOW_TERMS": "naked chef",
        }
    )
    screen = PromptScreen.from_settings(settings)
    assert screen.findings("brand x logo").refusal("relaxed") == "operator"
    assert screen.findings("Brand-X logo").refusal("relaxed") == "operator"
    assert screen.findings("brandex logo").refusal("relaxed") is None
    assert screen.findings("goblins everywhere").refusal("relaxed") == "operator"
    assert screen.findings("a spicy pic").refusal("standard") == "sexual"
    assert screen.findings("a w0mbat").refusal("standard") == "operator"
    assert screen.findings("zebra crossing").refusal("standard") == "operator"
    assert screen.findings("a zebra").refusal("standard") is None
    assert screen.findings("the naked chef cooking").refusal("standard") is None
    assert screen.findings("a nude palette shop sign").refusal("standard") is None
    assert screen.findings("naked").refusal("standard") == "sexual"


def test_bad_list_settings_are_errors_that_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(InvalidInput, match=r"nope.txt.*cannot be read"):
        PromptScreen.from_settings(SafetySettings(block_files=(str(missing),)))
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("[violence]\nsword\n")
    with pytest.raises(InvalidInput, match=r"wrong.txt line 1: unknown category \[violence\]"):
        PromptScreen.from_settings(SafetySettings(block_files=(str(wrong),)))
    with pytest.raises(InvalidInput, match="unknown safety level 'lax'"):
        SafetySettings.from_env({"STICKER_MAKER_SAFETY": "lax"})
    with pytest.raises(InvalidInput, match="STICKER_MAKER_SAFETY_IMAGE_THRESHOLD"):
        SafetySettings.from_env({"STICKER_MAKER_SAFETY_IMAGE_THRESHOLD": "2"})


def test_the_default_list_is_well_formed() -> None:
    entries = parse(default_text(), where="default", default="sexual")
    terms = [term for _, term in entries]
    assert len(entries) > 200 and len(set(terms)) == len(terms)  # no duplicates
    categories = {category for category, _ in entries}
    assert categories == {
        "minors",
        "sexual_violence",
        "sexual",
        "suggestive",
        "minor_context",
        "allow",
    }


def test_the_refusal_never_repeats_what_matched(screen: PromptScreen) -> None:
    message = ContentBlocked("prompt").message
    assert "prompt" in message and "nude" not in message.lower()
    assert ContentBlocked("image").message != message


def test_a_text_classifier_flags_what_the_lists_miss(tmp_path: Path) -> None:
    from safety.tiny_classifiers import build_text_classifier

    flags = build_text_classifier(tmp_path / "nsfw", "nsfw")
    clears = build_text_classifier(tmp_path / "sfw", "sfw")
    flagging = PromptScreen.from_settings(SafetySettings(text_model=str(flags)))
    clearing = PromptScreen.from_settings(SafetySettings(text_model=str(clears)))
    assert flagging.findings("a cute cat").refusal("standard") == "classifier"
    assert flagging.findings("a cute cat").refusal("relaxed") is None  # relaxed: lists only
    assert clearing.findings("a cute cat").refusal("strict") is None
    assert clearing.findings("a nude woman").refusal("standard") == "sexual"


def test_a_classifier_that_does_not_load_or_fit_is_an_error(tmp_path: Path) -> None:
    from safety.tiny_classifiers import build_text_classifier

    with pytest.raises(InvalidInput, match=r"SAFETY_TEXT_MODEL.*could not be loaded"):
        PromptScreen.from_settings(SafetySettings(text_model=str(tmp_path / "missing")))
    odd = build_text_classifier(tmp_path / "odd", "ham", labels=("ham", "spam"))
    with pytest.raises(InvalidInput, match="none of which is an unsafe label"):
        PromptScreen.from_settings(SafetySettings(text_model=str(odd)))
