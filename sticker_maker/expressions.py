"""A pack's expressions: the built-in list, and custom ones matched to an emoji.

A pack (README, "Packs") is one character with many expressions, each sticker tagged
with an emoji (WhatsApp and Telegram ask for one per sticker). ``count: N`` takes the
first N of :data:`BUILT_IN`; a custom expression given as text gets the emoji of the
built-in one it names (its name or a synonym, or one of those as a whole word in it:
"very happy" → 😄), else :data:`DEFAULT_EMOJI`.
"""

from __future__ import annotations

import re

from sticker_maker.params import Expression

#: WhatsApp's most stickers in a pack (Telegram takes more); a pack holds 1 to this many
MAX_PACK = 30
#: the emoji of a custom expression that matches none of the built-in ones
DEFAULT_EMOJI = "\U0001f642"  # 🙂

#: (name, emoji, prompt words, synonyms): the first eight are the classic pack
_TABLE: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("happy", "😄", "happy, big smile", ("smile", "smiling", "joy", "glad", "cheerful")),
    ("sad", "😢", "sad, teary eyes, frowning", ("unhappy", "down", "upset")),
    ("angry", "😠", "angry, furrowed brows", ("mad", "furious", "grumpy", "annoyed")),
    ("love", "😍", "in love, heart eyes", ("heart eyes", "heart", "adore", "in love")),
    ("laughing", "😂", "laughing hard, tears of joy", ("laugh", "lol", "haha", "funny")),
    ("surprised", "😮", "surprised, open mouth, wide eyes", ("wow", "amazed", "astonished")),
    ("thumbs up", "👍", "giving a thumbs up", ("like", "approve", "yes", "good job")),
    ("sleepy", "😴", "sleepy, yawning, eyes half closed", ("tired", "sleeping", "asleep")),
    ("cool", "😎", "cool, wearing sunglasses", ("sunglasses", "chill")),
    ("crying", "😭", "crying loudly, streams of tears", ("cry", "sobbing", "tears")),
    ("thinking", "🤔", "thinking, hand on chin", ("hmm", "pondering", "wondering")),
    ("winking", "😉", "winking one eye", ("wink",)),
    ("shocked", "😱", "shocked, screaming, hands on cheeks", ("scream", "horrified", "omg")),
    ("party", "🥳", "celebrating, party hat, confetti", ("celebrate", "celebrating", "birthday")),
    ("confused", "😕", "confused, head tilted", ("puzzled", "what")),
    ("hello", "👋", "waving hello", ("hi", "wave", "waving", "bye", "goodbye")),
    ("shy", "😊", "shy, blushing", ("blush", "blushing", "embarrassed")),
    ("kiss", "😘", "blowing a kiss", ("kissing", "mwah")),
    ("ok", "👌", "making an OK hand sign", ("okay", "fine", "perfect")),
    ("facepalm", "🤦", "facepalm, hand over face", ("ugh", "face palm")),
    ("scared", "😨", "scared, trembling", ("afraid", "fear", "frightened")),
    ("sick", "🤒", "sick, thermometer in mouth", ("ill", "fever", "unwell")),
    ("hungry", "🤤", "hungry, drooling", ("drool", "yummy", "starving")),
    ("excited", "🤩", "excited, star-struck eyes", ("starstruck", "star struck", "thrilled")),
    ("nervous", "😅", "nervous smile, sweat drop", ("awkward", "oops", "phew")),
    ("bored", "😑", "bored, blank stare", ("meh", "unimpressed", "expressionless")),
    ("sorry", "🙏", "apologising, hands pressed together", ("please", "thanks", "thank you")),
    ("good night", "🌙", "good night, holding a pillow", ("night", "goodnight", "bedtime")),
    ("mind blown", "🤯", "mind blown, head exploding", ("mindblown", "blown away")),
    ("silly", "😜", "silly face, tongue out", ("goofy", "tongue out", "crazy", "playful")),
)

#: the built-in expressions, in the order ``count`` takes them
BUILT_IN: tuple[Expression, ...] = tuple(
    Expression(name=name, emoji=emoji, prompt=words) for name, emoji, words, _ in _TABLE
)
_BY_WORD: dict[str, Expression] = {}
for _expression, (_, _, _, _synonyms) in zip(BUILT_IN, _TABLE, strict=True):
    for _word in (_expression.name, *_synonyms):
        _BY_WORD.setdefault(_word, _expression)


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower().replace("-", " ")).split())


def first(count: int) -> tuple[Expression, ...]:
    """The first ``count`` built-in expressions."""
    return BUILT_IN[:count]


def matching(text: str) -> Expression | None:
    """The built-in expression ``text`` names, or that appears in it as a whole word."""
    normal = _normal(text)
    if normal in _BY_WORD:
        return _BY_WORD[normal]
    padded = f" {normal} "
    for word, expression in sorted(_BY_WORD.items(), key=lambda item: -len(item[0])):
        if f" {word} " in padded:
            return expression
    return None


def custom(text: str) -> Expression:
    """A custom expression: its own words, with the emoji of the built-in one it matches."""
    name = " ".join(text.split())
    found = matching(name)
    if found is not None and _normal(name) == _normal(found.name):
        return found  # a built-in one by name: its fuller prompt words too
    return Expression(
        name=name[:60], emoji=found.emoji if found else DEFAULT_EMOJI, prompt=name[:200]
    )


__all__ = ["BUILT_IN", "DEFAULT_EMOJI", "MAX_PACK", "custom", "first", "matching"]
