"""A FITS header's values read straight from its 80-column cards, as astropy would give them.

astropy's `Header` parses a card's value when it is first asked for (~20 µs a keyword); a survey
of a thousand files asks about twenty keywords of each, and that was a third of `obsq reduce` on
small frames. `parse_cards` reads every plain card in one pass (~1 µs a card) into a read-only
mapping (`Cards`) that answers `in`, `[]`, `.get` and `.comments` as `fits.Header` does. A header
holding any card it does not read plainly — HIERARCH, CONTINUE, a complex or undefined value, a
value indicator out of place, a keyword outside the standard's characters, an unterminated
string — is left to astropy whole (None), so an answer never differs from astropy's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

CARD = 80
#: Keywords without a value: their text is commentary, not a value (FITS 4.0 §4.4.2).
COMMENTARY = frozenset({"COMMENT", "HISTORY", ""})
_KEYWORD = re.compile(r"[A-Z0-9_-]{1,8}\Z")
_INTEGER = re.compile(r"[+-]?\d+\Z")
_REAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][+-]?\d+)?\Z")


class Cards(Mapping[str, Any]):
    """A header's keyword values (the first card of a repeated keyword, as astropy answers) and comments."""

    def __init__(self, values: dict[str, Any], comments: dict[str, str]) -> None:
        self._values = values
        self.comments: Mapping[str, str] = comments

    def __getitem__(self, key: str) -> Any:
        return self._values[key.upper()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.upper() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def parse_cards(text: str) -> Cards | None:
    """The cards of one header (up to END) as `Cards`; None if any card needs astropy's reading."""
    values: dict[str, Any] = {}
    comments: dict[str, str] = {}
    for start in range(0, len(text) - CARD + 1, CARD):
        card = text[start : start + CARD]
        keyword = card[:8].rstrip()
        if keyword == "END":
            break
        if card[8:10] != "= ":
            if keyword in COMMENTARY and "=" not in card[8:10]:
                continue
            return None  # HIERARCH, CONTINUE, a value indicator out of place, a keyword with no value
        if not _KEYWORD.match(keyword):
            return None
        parsed = _value(card[10:])
        if parsed is None:
            return None
        if keyword not in values:
            values[keyword], comments[keyword] = parsed
    return Cards(values, comments)


def _value(field: str) -> tuple[Any, str] | None:
    """A value field's (value, comment), or None where astropy must read it."""
    text = field.lstrip()
    if text.startswith("'"):
        parts = []
        at = 1
        while True:
            quote = text.find("'", at)
            if quote < 0:
                return None  # an unterminated string
            if text.startswith("''", quote):
                parts.append(text[at : quote + 1])
                at = quote + 2
                continue
            parts.append(text[at:quote])
            rest = text[quote + 1 :].strip()
            break
        if rest and not rest.startswith("/"):
            return None
        return "".join(parts).rstrip(), rest[1:].strip()
    word, _, comment = text.partition("/")
    word = word.strip()
    value: Any
    if word in ("T", "F"):
        value = word == "T"
    elif _INTEGER.match(word):
        value = int(word)
    elif _REAL.match(word):
        value = float(word.replace("D", "E").replace("d", "e"))
    else:
        return None  # undefined, complex, or not a value astropy reads plainly
    return value, comment.strip()
