"""Settings from one object: environment variables prefixed TURNLENS_ (Streamlit's own in .streamlit/)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    db_path: Path
    read_only: bool  # presentation mode: nothing can be imported or decided

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            db_path=Path(os.environ.get("TURNLENS_DB", "data/turnlens.duckdb")),
            read_only=os.environ.get("TURNLENS_READ_ONLY", "").lower() in ("1", "true", "yes"),
        )
