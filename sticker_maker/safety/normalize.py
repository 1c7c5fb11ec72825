"""Text → the words a policy list is matched against, whatever the disguise.

A prompt becomes one or more *views*, each a list of tokens (lower-case ASCII words
where the text allows), and every token may have *variants*:

1. Unicode: NFKC (fullwidth and mathematical letters, circled letters, ligatures),
   case folding, accents dropped (NFD, combining marks removed), invisible format
   characters dropped (zero-width space and joiner, soft hyphen), then look-alike
   letters of other scripts folded to the Latin letter they imitate (Cyrillic a, e, o,
   er and es; Greek omicron and nu …) with the Unicode confusables data shipped by
   ``confusable-homoglyphs``.
2. Leetspeak: inside a word, symbols that stand for letters (``@`` ``$`` ``!`` ``|``)
   are read as letters when a letter or digit follows them, and digits in a word that
   also has letters (``p0rn``, ``s3x``, ``nud3``) are read as letters. ``1`` may be
   ``i`` or ``l``: both are tried. Numbers alone (``1024``) stay numbers.
3. Spacing and punctuation: words are split on anything that is not a letter or digit;
   a run of three or more single letters (``n u d e``, ``N.U.D.E``) is read as one word,
   and each stretch of three or more of its letters is tried too (``a n u d e``);
   each whitespace-separated chunk with inner punctuation is also read as its pieces
   joined (``nu.de``, ``p-o-r-n``), as a single word.
4. Stretching: a word with a letter repeated three times or more (``nuuuude``) also
   yields the word with every run of a letter collapsed to one, compared with terms
   collapsed the same way (only then, so ``Bobs`` never matches ``boobs``).

Matching is on whole tokens, so ``Sussex``, ``cocktail``, ``Scunthorpe``,
``analysis``, ``therapist`` and ``assassin`` are single tokens that contain no listed
word: they pass. Pure functions; the confusables table is built once, on first use.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

#: symbols read as letters inside a word (when a letter or digit follows)
_SYMBOLS = {"@": "a", "$": "s", "!": "i", "|": "l", "€": "e", "£": "l", "+": "t"}
#: digits read as letters in a word that also has letters; "1" is tried as "i" and "l"
_DIGITS = str.maketrans({"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g"})
_SYMBOL_RUN = re.compile(r"[@$!|€£+]+(?=[0-9a-z])")
_PIECES = re.compile(r"[^\W_]+")  # letters and digits of any script
_RUN3 = re.compile(r"([a-z])\1\1")
_RUNS = re.compile(r"([a-z])\1+")
#: the longest run of single letters read as one word (bounds the stretches tried)
MAX_RUN = 24


@functools.cache
def _confusables() -> dict[int, str]:
    """Non-ASCII character → the ASCII letter or digit it imitates (Unicode confusables)."""
    from confusable_homoglyphs import confusables

    table: dict[int, str] = {}
    for char, glyphs in confusables.confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        for glyph in glyphs:
            target = glyph["c"]
            if len(target) == 1 and target.isascii() and target.isalnum():
                table[ord(char)] = target.lower()
                break
    return table


def fold(text: str) -> str:
    """Step 1: case, compatibility forms, accents, invisible characters, look-alikes."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if text.isascii():
        return text
    text = "".join(
        c
        for c in unicodedata.normalize("NFD", text)
        if unicodedata.category(c) not in ("Mn", "Me", "Cf")
    )
    return unicodedata.normalize("NFC", text).translate(_confusables())


def _unleet_symbols(chunk: str) -> str:
    return _SYMBOL_RUN.sub(lambda m: "".join(_SYMBOLS[c] for c in m.group()), chunk)


def variants(token: str) -> tuple[str, ...]:
    """The readings of one token: itself first, then leetspeak readings (if it mixes
    letters and digits)."""
    if token.isalpha() or token.isdigit() or not any(c.isalpha() for c in token):
        return (token,)
    read = token.translate(_DIGITS)
    if "1" not in read:
        return (token, read) if read != token else (token,)
    return (token, read.replace("1", "i"), read.replace("1", "l"))


def stretched(token: str) -> str | None:
    """``nuuuude`` → ``nude``: the collapsed token when a letter repeats 3+ times, else None."""
    return collapse(token) if _RUN3.search(token) else None


def collapse(token: str) -> str:
    """Every run of one letter → that letter once (terms are compared collapsed too)."""
    return _RUNS.sub(r"\1", token)


def _letter_runs(tokens: list[str]) -> tuple[list[str], list[str]]:
    """Runs of 3+ single letters become one word (``n u d e`` → ``nude``); also every
    stretch of 3+ letters inside such a run, since a run may start with a real one-letter
    word (``a n u d e`` → ``anude``, and ``nude``). Returns (tokens, stretches)."""
    out: list[str] = []
    stretches: list[str] = []
    run: list[str] = []
    for token in [*tokens, ""]:
        if len(token) == 1 and token.isalpha():
            run.append(token)
            continue
        if len(run) >= 3:
            letters = "".join(run[:MAX_RUN])
            out.append(letters)
            stretches.extend(
                letters[start:end]
                for start in range(len(letters))
                for end in range(start + 3, len(letters) + 1)
                if (start, end) != (0, len(letters))
            )
        else:
            out.extend(run)
        run = []
        if token:
            out.append(token)
    return out, stretches


@dataclass(frozen=True)
class Views:
    """How a prompt is read (see the module doc)."""

    #: its words, split on anything that is not a letter or digit, letter runs joined
    words: list[str]
    #: single words also tried: each chunk with inner punctuation, its pieces joined
    #: (``nu.de``), and the stretches of a run of single letters (``a n u d e``)
    extra: list[str]


def views(text: str) -> Views:
    """Fold ``text`` and split it into the tokens that are matched."""
    words: list[str] = []
    extra: list[str] = []
    for chunk in fold(text).split():
        pieces = _PIECES.findall(_unleet_symbols(chunk))
        words.extend(pieces)
        if len(pieces) > 1:
            extra.append("".join(pieces))
    joined, stretches = _letter_runs(words)
    return Views(joined, extra + stretches)


def primary(token: str) -> str:
    """The reading of a token used in phrases: its first leetspeak reading, else itself."""
    readings = variants(token)
    return readings[1] if len(readings) > 1 else token


def term_tokens(term: str) -> list[str]:
    """A list entry as tokens, read the way a prompt's words are."""
    pieces: list[str] = []
    for chunk in fold(term).split():
        pieces.extend(_PIECES.findall(_unleet_symbols(chunk)))
    return [primary(p) for p in pieces]
