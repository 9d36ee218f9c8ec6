"""A folder, glob or single file of Parquet parts (what Spark, Ray and Hive write), local or behind any fsspec URL:
listing the parts in a stable order, and reading them all-or-nothing with each problem naming its part and row.

A source is one of
- a Parquet file;
- a folder: every ``*.parquet`` file under it, at any depth, so a hive-partitioned layout
  (``logs/day=2026-12-01/part-00000.parquet``) is read whole;
- a glob (``logs/day=2026-12-*/*.parquet``);
- any of these as an fsspec URL (``s3://bucket/logs/``, ``gs://...``, ``file:///...``), listed through fsspec.

Files and folders whose name starts with ``_`` or ``.`` are skipped, as Spark and Hive do: ``_SUCCESS``,
``_metadata``, ``.part-0.parquet.crc`` and a writer's unfinished ``.tmp`` folders are not data. The hive partition
keys of a part's path (``day=2026-12-01``) are reported with it (``Part.partition``) but not added to its rows: a
log's fields come from the file alone, whatever folder it was put in.
"""

from __future__ import annotations

import glob as _glob
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from analysis.logs import LogFormatError, Problem

_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Part:
    """One Parquet part: its path (a local path, or the URL it was listed under) and its hive partition keys."""

    path: str
    partition: dict[str, str] = field(default_factory=dict)


def is_url(source: str) -> bool:
    """Whether source names an fsspec URL (scheme://...) rather than a local path."""
    return "://" in str(source)


def names_parts(source: str | Path) -> bool:
    """Whether source names a set of parts rather than one local file: a folder, a glob or a URL (the readers of
    single files hand such a source to list_parts)."""
    text = str(source)
    return is_url(text) or any(c in text for c in _GLOB_CHARS) or Path(text).is_dir()


def _hidden(name: str) -> bool:
    return name.startswith(("_", "."))


def _partition(relative: Sequence[str]) -> dict[str, str]:
    """The key=value folder names of a part's path below the source (hive partitioning)."""
    keys = {}
    for piece in relative[:-1]:
        key, sep, value = piece.partition("=")
        if sep and key:
            keys[key] = value
    return keys


def _visible(relative: Sequence[str]) -> bool:
    return not any(_hidden(piece) for piece in relative)


def _parts_of(files: list[str], root: str | None, sep: str) -> list[Part]:
    parts = []
    for f in sorted(files):
        relative = (f[len(root):].lstrip(sep) if root and f.startswith(root) else f).split(sep)
        if f.endswith(".parquet") and _visible(relative):
            parts.append(Part(f, _partition(relative)))
    return parts


def _no_parts(source: str, why: str) -> LogFormatError:
    return LogFormatError([Problem(str(source), None, None, why)])


def list_parts(source: str | Path) -> list[Part]:
    """The Parquet parts of source (a file, folder, glob or fsspec URL of one), sorted by path.

    LogFormatError names source when it does not exist or holds no Parquet part."""
    source = str(source)
    if is_url(source):
        return _list_url(source)
    if any(c in source for c in _GLOB_CHARS):
        matches = [m for m in _glob.glob(source, recursive=True) if Path(m).is_file()]
        if not matches:
            raise _no_parts(source, "no file matches this pattern")
        root = source[:min(source.index(c) for c in _GLOB_CHARS if c in source)].rpartition("/")[0]
        parts = _parts_of([str(Path(m)) for m in matches], str(Path(root)) if root else None, "/")
    else:
        path = Path(source)
        if not path.exists():
            raise _no_parts(source, "no such file or folder")
        if path.is_file():
            if not path.name.endswith(".parquet"):
                raise _no_parts(source, "not a Parquet file (expected a .parquet file, or a folder of them)")
            return [Part(str(path))]
        parts = _parts_of([str(f) for f in path.rglob("*.parquet") if f.is_file()], str(path), "/")
    if not parts:
        raise _no_parts(source, "holds no Parquet part (*.parquet; names starting with _ or . are skipped)")
    return parts


def _list_url(source: str) -> list[Part]:
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(source)
    except (ImportError, ValueError) as exc:  # an unknown scheme, or its package is not installed
        raise _no_parts(source, f"cannot open this URL ({exc})") from None
    protocol = source.split("://", 1)[0]

    def url(p: str) -> str:
        return p if "://" in p else f"{protocol}://{p.lstrip('/') if protocol != 'file' else p}"

    if any(c in path for c in _GLOB_CHARS):
        files = [f for f in fs.glob(path) if fs.isfile(f)]
        root = path[:min(path.index(c) for c in _GLOB_CHARS if c in path)].rpartition("/")[0]
        if not files:
            raise _no_parts(source, "no file matches this pattern")
    elif fs.isfile(path):
        if not path.endswith(".parquet"):
            raise _no_parts(source, "not a Parquet file (expected a .parquet file, or a folder of them)")
        return [Part(url(path))]
    elif fs.isdir(path):
        files, root = [f for f in fs.find(path) if f.endswith(".parquet")], path.rstrip("/")
    else:
        raise _no_parts(source, "no such file or folder")
    parts = [Part(url(p.path), p.partition) for p in _parts_of(files, root, "/")]
    if not parts:
        raise _no_parts(source, "holds no Parquet part (*.parquet; names starting with _ or . are skipped)")
    return parts


def read_parts(parts: Sequence[Part], read_one: Callable[[Path, str], pa.Table]) -> pa.Table:
    """Every part read with read_one(local path, name for messages) and concatenated, all or nothing.

    read_one is the reader of one file of the format (e.g. analysis.candidates.read_candidates(path, name=name)),
    raising LogFormatError whose problems give the part and its row. Every part is read even after one fails, so
    one error lists the problems of all of them; any problem means nothing is returned. Local parts only: a URL's
    parts are for an engine that reads them itself (app/engines/ray_scoring.py)."""
    if not parts:
        raise LogFormatError([Problem("(input)", None, None, "no Parquet parts given")])
    tables: list[pa.Table] = []
    problems: list[Problem] = []
    for part in parts:
        if is_url(part.path):
            problems.append(Problem(part.path, None, None, "a URL: only local parts can be read here"))
            continue
        try:
            tables.append(read_one(Path(part.path), part.path))
        except LogFormatError as exc:
            problems.extend(exc.problems)
    if problems:
        raise LogFormatError(problems)
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]
