"""Reading and writing the JSON Lines logs the speech tools work on, record by record: a log is validated as
turnlens reads it (format 1.1, ``FILE:LINE: field: ...`` errors) and then kept exactly as written, so fields the
tools do not touch (unknown ones included) come out unchanged."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from analysis.logs import LogFormatError, Problem, file_kind, jsonl_records, read_log


def read_records(path: str | Path) -> list[dict]:
    """The records of a .jsonl or .jsonl.gz log, after validating it (LogFormatError lists every problem)."""
    path = Path(path)
    if file_kind(path) not in ("jsonl", "jsonl.gz"):
        raise LogFormatError([Problem(str(path), None, None, "the speech tools read .jsonl or .jsonl.gz logs")])
    read_log(path)
    out = []
    for _, record, problems in jsonl_records(path):
        if problems:  # read_log found none; kept so a file changed in between cannot slip through
            raise LogFormatError(problems)
        if record is not None:
            out.append(record)
    return out


def write_records(records: Iterable[dict], path: str | Path) -> int:
    """Write records as JSON Lines (gzip for .gz, mtime 0 so equal records give equal bytes), atomically: a
    temporary file in the same folder renamed into place. Returns the number of records."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=".jsonl")
    n = 0
    try:
        with os.fdopen(fd, "wb") as raw:
            sink = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if path.name.endswith(".gz") else raw
            try:
                for rec in records:
                    sink.write((json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8"))
                    n += 1
            finally:
                if sink is not raw:
                    sink.close()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return n
