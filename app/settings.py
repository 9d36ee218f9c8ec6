"""Settings from one object: environment variables prefixed TURNLENS_ (Streamlit's own in .streamlit/)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    db_path: Path
    read_only: bool  # presentation mode: nothing can be imported or decided
    umap_warmup: bool  # compile UMAP in the background at start-up (TURNLENS_UMAP_WARMUP=0 turns it off)
    numba_cache: Path  # numba's compiled-code cache (NUMBA_CACHE_DIR), so a restart compiles less

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            db_path=Path(os.environ.get("TURNLENS_DB", "data/turnlens.duckdb")),
            read_only=os.environ.get("TURNLENS_READ_ONLY", "").lower() in ("1", "true", "yes"),
            umap_warmup=os.environ.get("TURNLENS_UMAP_WARMUP", "1").lower() not in ("0", "false", "no"),
            numba_cache=Path(os.environ.get("NUMBA_CACHE_DIR")
                             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "turnlens"
                             / "numba"),
        )
