"""Settings from one object: environment variables prefixed TURNLENS_ (Streamlit's own in .streamlit/)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


@contextmanager
def environment(changes: Mapping[str, str]) -> Iterator[None]:
    """os.environ with changes (settings are read from it when used), then as it was, also after an error."""
    before = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class SettingsError(ValueError):
    """A setting holds a value turnlens cannot use; the message names the variable, the value and what is
    accepted. ``variable`` is the environment variable's name."""

    def __init__(self, variable: str, message: str):
        self.variable = variable
        super().__init__(message)


def env_flag(name: str, default: bool) -> bool:
    """The yes/no environment variable ``name``: 1/true/yes/on or 0/false/no/off, any case, surrounding white
    space ignored; unset or empty is ``default``. Anything else raises SettingsError: a switch that silently
    reads a typo as "off" could leave a presentation server writable (``on`` once meant writable)."""
    raw = os.environ.get(name)
    word = (raw or "").strip().lower()
    if not word:
        return default
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingsError(name, f"{name}={raw!r} is not a yes/no value: use one of {', '.join(TRUE_WORDS)} to switch "
                              f"it on, or one of {', '.join(FALSE_WORDS)} (or leave it unset) to switch it off; "
                              "case does not matter")


AUTH_MODES = ("accounts", "none")


def auth_mode() -> str:
    """TURNLENS_AUTH: ``accounts`` (the default: reviewers log in, see app.accounts) or ``none`` (a single-user
    laptop: names are typed, not verified; chosen explicitly and shown in the sidebar). Anything else is an error
    at start: a typo must not open a shared server to anyone."""
    raw = os.environ.get("TURNLENS_AUTH")
    word = (raw or "").strip().lower()
    if not word:
        return "accounts"
    if word not in AUTH_MODES:
        raise SettingsError("TURNLENS_AUTH", f"TURNLENS_AUTH={raw!r} is not a sign-in mode: use accounts (reviewers "
                                             "log in; the default) or none (a single-user laptop, names not "
                                             "verified)")
    return word


def audio_root() -> Path:
    """The folder a log's ``audio`` paths are relative to: $TURNLENS_AUDIO_ROOT, else <repo>/data/audio (where
    ``turnlens speech synthesize`` writes by default). Ingest checks a log's audio files under it and the pages play
    them from it; a path never resolves outside it (analysis.logs.resolve_audio). Not checked here: a root that
    does not exist is said where it matters (ingest, the player)."""
    return Path(os.environ.get("TURNLENS_AUDIO_ROOT", "").strip() or _REPO / "data" / "audio")


@dataclass(frozen=True)
class Settings:
    db_path: Path
    read_only: bool  # presentation mode: the database is opened read-only, nothing can be imported or decided
    umap_warmup: bool  # compile UMAP in the background at start-up (TURNLENS_UMAP_WARMUP=0 turns it off)
    numba_cache: Path  # numba's compiled-code cache (NUMBA_CACHE_DIR), so a restart compiles less
    default_dataset: str = "sample"  # the dataset a new session opens on, when it exists (TURNLENS_DATASET)
    audio_root: Path = field(default_factory=audio_root)  # TURNLENS_AUDIO_ROOT, else <repo>/data/audio
    auth: str = "accounts"  # TURNLENS_AUTH: accounts (log in) or none (single-user laptop); see auth_mode

    @classmethod
    def from_env(cls) -> Settings:
        """Raises SettingsError when a variable holds a value that cannot be used."""
        return cls(
            db_path=Path(os.environ.get("TURNLENS_DB", "data/turnlens.duckdb")),
            read_only=env_flag("TURNLENS_READ_ONLY", False),
            umap_warmup=env_flag("TURNLENS_UMAP_WARMUP", True),
            numba_cache=Path(os.environ.get("NUMBA_CACHE_DIR")
                             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "turnlens"
                             / "numba"),
            default_dataset=os.environ.get("TURNLENS_DATASET", "").strip() or "sample",
            audio_root=audio_root(),
            auth=auth_mode(),
        )
