"""Start the app with its database already open: ``python -m app.serve [streamlit run options]``.

Under a plain ``streamlit run app/streamlit_app.py`` the DuckDB file is opened when the first visitor's session
runs the script, so until someone visits, a CLI ingest can take the file and the app fails later. This launcher
checks the settings and opens the database first (read-only in read-only mode), so the lock is held from the
start, hands that connection to ``app.resources`` (the script runs in this process and uses it), then runs
``streamlit run`` in this same process: same options (``--server.port 8502``), same ``.streamlit/config.toml``
(the repository's, passed as options when started from a folder without one: ``config_flags``).
``make run``, ``turnlens serve`` and the browser tests start the app this way.

Exit codes, as the CLI's: 2 when a setting is not valid or the database cannot be used as configured,
3 when another process holds the database file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from app.cli import EXIT_LOCKED, EXIT_USAGE
from app.settings import Settings

APP_ENTRY = Path(__file__).resolve().parent / "streamlit_app.py"
REPO_CONFIG = APP_ENTRY.parents[1] / ".streamlit" / "config.toml"


def config_flags(cwd: Path, config: Path = REPO_CONFIG) -> list[str]:
    """The repository's Streamlit settings as ``streamlit run`` options, for a start from another folder.

    Streamlit reads ``.streamlit/config.toml`` only from the current folder (and the home folder), so started
    elsewhere the app would listen on every address, serve no static files (the audio player needs them) and
    phone home. Options given here come first, so the caller's own options still win; a folder with its own
    ``.streamlit/config.toml`` (the repository itself, or a deployment's) is left to it: []."""
    import tomllib

    if (Path(cwd) / ".streamlit" / "config.toml").is_file() or not config.is_file():
        return []
    flags: list[str] = []
    for section, values in tomllib.loads(config.read_text()).items():
        for key, value in values.items():
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            flags.append(f"--{section}.{key}={text}")
    return flags


def _fail(message: str, code: int) -> int:
    print(f"turnlens: {message}", file=sys.stderr)
    return code


def _import_resources():
    """app.resources, imported before Streamlit's runtime exists: each st.cache_data it declares would log
    "No runtime found, using MemoryCacheStorageManager", which is untrue here (a cache's storage is chosen at
    its first call, inside the running server), so that one message is dropped while importing."""
    import logging

    import streamlit  # noqa: F401  (creates the logger below, with its configured level, before the filter)

    def not_yet(record: logging.LogRecord) -> bool:
        return "No runtime found" not in record.getMessage()

    log = logging.getLogger("streamlit.runtime.caching.cache_data_api")
    log.addFilter(not_yet)
    try:
        from app import resources
    finally:
        log.removeFilter(not_yet)
    return resources


def open_app_database() -> int:
    """Check the settings and open the app's database for this process; 0, or an exit code after saying what
    is wrong on stderr."""
    from analysis.logs import max_decompressed_bytes, max_line_bytes
    from app import store

    resources = _import_resources()
    try:
        settings = Settings.from_env()
        max_line_bytes()  # read by the Import page: a bad value is said now, not at the first upload
        max_decompressed_bytes(0)
    except ValueError as exc:  # SettingsError is one
        return _fail(str(exc), EXIT_USAGE)
    try:
        conn = resources.open_database(settings.db_path, read_only=settings.read_only)
    except store.StoreLockedError as exc:
        return _fail(str(exc), EXIT_LOCKED)
    except resources.DatabaseUnavailableError as exc:
        return _fail(str(exc), EXIT_USAGE)
    resources.use_connection(str(settings.db_path), conn)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Open the database, then serve the app until Streamlit stops (it exits the process with its own code).
    ``argv``: options for ``streamlit run``, e.g. ``["--server.port", "8502"]``."""
    code = open_app_database()
    if code:
        return code
    from streamlit.web import cli as streamlit_cli

    # `streamlit run` itself (its option parsing, config files and bootstrap.run), so every option it takes
    # works here unchanged; called in this process so the script finds the connection opened above.
    return streamlit_cli.main(["run", str(APP_ENTRY), *config_flags(Path.cwd()),
                               *(sys.argv[1:] if argv is None else argv)], prog_name="streamlit")


if __name__ == "__main__":
    sys.exit(main())
