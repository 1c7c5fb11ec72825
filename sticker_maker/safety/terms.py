"""Policy lists: the maintained default list plus the operator's block and allow lists.

A list file is UTF-8 text: ``[category]`` starts a section, then one word or phrase per
line; ``#`` starts a comment. A trailing ``*`` matches words that begin with the term.
Operator block lines before any section are in the ``operator`` category; an operator
allow file is a plain list of phrases (its sections, if any, are ignored). See
``data/default_terms.txt`` for the categories.

:class:`TermList` finds which categories a text touches, on whole words of the
normalised text (:mod:`sticker_maker.safety.normalize`); allowed phrases are masked
first, so a listed word inside an allowed phrase (``naked`` in ``naked mole rat``) is
not matched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from sticker_maker.errors import InvalidInput
from sticker_maker.safety.normalize import collapse, primary, stretched, term_tokens, variants
from sticker_maker.safety.normalize import views as text_views

#: every category a list may use (``allow`` masks; ``minor_context`` only combines)
CATEGORIES = (
    "minors",
    "sexual_violence",
    "sexual",
    "suggestive",
    "minor_context",
    "operator",
    "allow",
)


def default_text() -> str:
    """The maintained default list shipped with the package."""
    return (
        resources.files("sticker_maker.safety")
        .joinpath("data/default_terms.txt")
        .read_text(encoding="utf-8")
    )


def parse(text: str, *, where: str, default: str, setting: str = "safety") -> list[tuple[str, str]]:
    """``(category, term)`` pairs of a list file; :class:`InvalidInput` names a bad line."""
    entries: list[tuple[str, str]] = []
    category = default
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            category = line[1:-1].strip().lower()
            if category not in CATEGORIES:
                raise InvalidInput(
                    f"{where} line {number}: unknown category [{category}]; "
                    f"allowed: {', '.join(CATEGORIES)}",
                    setting,
                )
            continue
        if not term_tokens(line.rstrip("*")):
            raise InvalidInput(
                f"{where} line {number}: {line!r} has no letters or digits to match", setting
            )
        entries.append((category, line))
    return entries


def read_file(path: Path, *, default: str, setting: str) -> list[tuple[str, str]]:
    """A list file's entries; an unreadable file is an error that names it and ``setting``
    (never skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"the list file {str(path)!r} cannot be read ({exc.__class__.__name__}: "
            f"{getattr(exc, 'strerror', None) or exc}); fix the path or remove it from the "
            "setting",
            setting,
        ) from None
    return parse(text, where=str(path), default=default, setting=setting)


@dataclass
class TermList:
    """Compiled terms: whole words, stretched words, word prefixes and phrases."""

    words: dict[str, str] = field(default_factory=dict)
    collapsed: dict[str, str] = field(default_factory=dict)
    prefixes: dict[str, str] = field(default_factory=dict)
    phrases: dict[tuple[str, ...], str] = field(default_factory=dict)
    allowed: set[tuple[str, ...]] = field(default_factory=set)
    longest: int = 1
    longest_allowed: int = 0
    _prefix_tuple: tuple[str, ...] = ()

    @classmethod
    def build(cls, entries: Iterable[tuple[str, str]]) -> TermList:
        terms = cls()
        for category, term in entries:
            terms.add(category, term)
        terms._prefix_tuple = tuple(terms.prefixes)
        return terms

    def add(self, category: str, term: str) -> None:
        prefix = term.endswith("*")
        tokens = tuple(term_tokens(term.rstrip("*")))
        if category == "allow":
            self.allowed.add(tokens)
            self.longest_allowed = max(self.longest_allowed, len(tokens))
            return
        if prefix and len(tokens) == 1:
            self.prefixes.setdefault(tokens[0], category)
        elif len(tokens) == 1:
            self.words.setdefault(tokens[0], category)
            self.collapsed.setdefault(collapse(tokens[0]), category)
        else:
            self.phrases.setdefault(tokens, category)
            self.longest = max(self.longest, len(tokens))

    def __len__(self) -> int:
        return len(self.words) + len(self.prefixes) + len(self.phrases)

    def categories(self, text: str) -> set[str]:
        """The categories of every listed term in ``text`` (empty: nothing listed)."""
        found: set[str] = set()
        views = text_views(text)
        self._scan(views.words, found)
        for token in views.extra:  # ``nu.de``, ``a n u d e``: tried as single words
            self._word(token, found)
        return found

    def _word(self, token: str, found: set[str]) -> None:
        """One token against the single-word terms, each of its readings."""
        for reading in variants(token):
            category = self.words.get(reading)
            if category is None and self._prefix_tuple and reading.startswith(self._prefix_tuple):
                category = next(c for p, c in self.prefixes.items() if reading.startswith(p))
            if category is not None:
                found.add(category)
        loose = stretched(primary(token))
        if loose is not None:  # ``nuuuude``, ``pooooorn``: compared collapsed
            category = self.collapsed.get(loose)
            if category is None and self._prefix_tuple and loose.startswith(self._prefix_tuple):
                category = next(c for p, c in self.prefixes.items() if loose.startswith(p))
            if category is not None:
                found.add(category)

    def _scan(self, tokens: list[str], found: set[str]) -> None:
        """Words and phrases, after masking the allowed phrases."""
        readings = [primary(t) for t in tokens]
        count = len(tokens)
        masked = [False] * count
        for size in range(1, self.longest_allowed + 1):
            for start in range(count - size + 1):
                if tuple(readings[start : start + size]) in self.allowed:
                    masked[start : start + size] = [True] * size
        for i, token in enumerate(tokens):
            if masked[i]:
                continue
            self._word(token, found)
            for size in range(2, min(self.longest, count - i) + 1):
                if masked[i + size - 1]:
                    break
                category = self.phrases.get(tuple(readings[i : i + size]))
                if category is not None:
                    found.add(category)
