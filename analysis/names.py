"""Names typed by people or read from data (reviewers, datasets, models): one normal form, and a look-alike key.

A reviewer name is an identity: ``alice`` and ``alice`` + a zero-width space must not be two reviewers who
look the same on screen (one person could fake agreement). ``normalise_name`` gives the stored form;
``lookalike_key`` folds what still looks the same after that (case, Cyrillic and Greek letters shaped like
Latin ones, digits shaped like letters), so a new name that collides with another's key is refused.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_CHARS = 64

# Letters that render like Latin ones in common fonts (Unicode's confusables, the ones that matter for names
# typed on a keyboard), and digits read as letters. Applied after NFKC and casefold.
_CONFUSABLES = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "l", "ї": "l", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w",
    "ӏ": "l", "һ": "h", "ь": "b", "г": "r",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "l", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "ς": "c", "σ": "o", "μ": "u", "γ": "y",
    # digits and letters that are told apart by shape alone
    "0": "o", "1": "l", "i": "l", "5": "s", "|": "l",
})


class InvalidNameError(ValueError):
    """A name that cannot be used; the message says why, for the person who typed it."""


def _invisible(ch: str) -> bool:
    # Cc: control characters; Cf: format characters (zero-width space/joiners, bidi overrides, soft hyphen);
    # Zl/Zp: line and paragraph separators. None of them is visible in a name.
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")


def normalise_name(text: str, *, what: str = "name") -> str:
    """The stored form of a name: Unicode NFKC, invisible characters removed, runs of white space folded to
    one space, trimmed. Raises InvalidNameError if nothing visible is left, if it is longer than MAX_NAME_CHARS, or
    if it holds invalid Unicode (a lone surrogate)."""
    if not isinstance(text, str):
        raise InvalidNameError(f"the {what} must be text")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidNameError(f"the {what} is not valid Unicode (it holds a lone surrogate)") from None
    folded = unicodedata.normalize("NFKC", text)
    visible = "".join(ch for ch in folded if not _invisible(ch))
    name = " ".join(visible.split())
    if not name:
        raise InvalidNameError(f"the {what} must not be empty")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidNameError(f"the {what} is {len(name)} characters long; at most {MAX_NAME_CHARS} are allowed")
    return name


def lookalike_key(name: str) -> str:
    """What a name looks like: two names with the same key cannot be told apart on screen.

    Case-insensitive, Cyrillic/Greek look-alikes mapped to Latin, 0/5 mapped to o/s and 1, i, l, | all to l
    (a 1 passes for an i or an l: a name with an i is refused beside one with an l in its place, the price of
    catching al1ce), accents and white space, dots, dashes and underscores dropped."""
    base = normalise_name(name).casefold()
    stripped = "".join(ch for ch in unicodedata.normalize("NFKD", base) if not unicodedata.combining(ch))
    keyed = stripped.translate(_CONFUSABLES)
    return "".join(ch for ch in keyed if ch.isalnum())


def find_lookalike(name: str, existing: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """An existing name that looks like ``name`` without being it, or None. ``name`` is normalised first."""
    own = normalise_name(name)
    key = lookalike_key(own)
    for other in sorted(existing):
        if other != own and lookalike_key(other) == key:
            return other
    return None


def check_new_name(name: str, existing: list[str] | tuple[str, ...] | set[str], *, what: str = "reviewer name") -> str:
    """The normalised name, or InvalidNameError saying which existing name it looks like."""
    own = normalise_name(name, what=what)
    other = find_lookalike(own, existing)
    if other is not None:
        raise InvalidNameError(f"the {what} {own!r} looks like the existing {what} {other!r}; use that exact name, "
                         "or one that is clearly different")
    return own
