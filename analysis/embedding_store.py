"""An append-only key-value store of fixed-length float32 vectors on disk, as Parquet parts: each save writes a
new, uniquely named part (to a temporary name, then renamed into place, so a reader never sees half a file),
readers take the union of the parts, and two processes can write at once without a lock.

Keys are 20-byte digests (sha1 of whatever the caller keys by). A key written by several processes lands in
several parts; that is harmless (any copy holds the vector for the key) and ``compact`` drops the copies.

Memory stays bounded in the size of the store: the in-memory index holds 16 bytes per stored key (the key's
first 8 bytes and where its row is), never the vectors; a lookup reads only the row groups holding the rows it
needs (``ROW_GROUP_ROWS`` rows each), checks each row's full key, and keeps only the rows it asked for.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

KEY_BYTES = 20  # sha1
PART_PREFIX, PART_SUFFIX = "part-", ".parquet"
TMP_PREFIX = ".tmp-"  # never matches PART_PREFIX: readers ignore a part still being written
ROW_GROUP_ROWS = 4096  # a lookup reads whole row groups: 4096 rows of 384 floats is 6 MB


def _prefixes(keys: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each (n, KEY_BYTES) uint8 key as a uint64 (big-endian: sorts like the bytes)."""
    return np.ascontiguousarray(keys[:, :8]).view(">u8").ravel().astype(np.uint64)


def as_key_array(keys: Iterable[bytes]) -> np.ndarray:
    """Digests as an (n, KEY_BYTES) uint8 array; ValueError if one has another length."""
    keys = list(keys)
    joined = b"".join(keys)
    if len(joined) != KEY_BYTES * len(keys):
        raise ValueError(f"every key must be {KEY_BYTES} bytes")
    return np.frombuffer(joined, dtype=np.uint8).reshape(len(keys), KEY_BYTES)


def _key_column(table: pa.Table) -> np.ndarray:
    col = table.column("key").combine_chunks()
    if len(col) == 0:
        return np.zeros((0, KEY_BYTES), dtype=np.uint8)
    # a fixed-size binary column is one contiguous buffer of n * KEY_BYTES bytes (offset by the slice start)
    data = np.frombuffer(col.buffers()[1], dtype=np.uint8)
    return data[col.offset * KEY_BYTES:(col.offset + len(col)) * KEY_BYTES].reshape(len(col), KEY_BYTES)


def _vector_column(table: pa.Table, dim: int) -> np.ndarray:
    col = table.column("vector").combine_chunks()
    return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), dim).astype(np.float32, copy=False)


class VectorStore:
    """Vectors of dimension ``dim`` by 20-byte key, in the folder's ``part-*.parquet`` files.

    ``get`` returns which keys are stored and their vectors; ``put`` appends a part; ``compact`` merges every
    part into one. Safe with other processes doing any of the three at the same time on the same folder.
    """

    def __init__(self, folder: str | Path, dim: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self.schema = pa.schema([("key", pa.binary(KEY_BYTES)), ("vector", pa.list_(pa.float32(), dim))])
        self._reset()

    def _reset(self) -> None:
        self._parts: list[Path] = []  # position in this list = the part number in _locations
        self._prefix = np.zeros(0, dtype=np.uint64)  # sorted
        self._location = np.zeros(0, dtype=np.int64)  # part number << 32 | row, in _prefix's order

    def part_files(self) -> list[Path]:
        return sorted(self.folder.glob(f"{PART_PREFIX}*{PART_SUFFIX}"))

    def __len__(self) -> int:
        """Rows indexed (a key stored in several parts counts once per part until compact)."""
        self.refresh()
        return len(self._prefix)

    # -- the index
    def refresh(self) -> None:
        """Index the parts other processes (or this one) added since the last call; start over if one was
        removed (a compaction replaced it)."""
        on_disk = self.part_files()
        known = set(self._parts)
        if not known <= set(on_disk):
            self._reset()
            known = set()
        new = [p for p in on_disk if p not in known]
        if not new:
            return
        prefixes, locations = [self._prefix], [self._location]
        for path in new:
            try:
                keys = _key_column(pq.read_table(path, columns=["key"]))
            except FileNotFoundError:  # compacted away between the listing and the read: next refresh sees it
                continue
            number = len(self._parts)
            self._parts.append(path)
            prefixes.append(_prefixes(keys))
            locations.append((np.int64(number) << 32) | np.arange(len(keys), dtype=np.int64))
        prefix, location = np.concatenate(prefixes), np.concatenate(locations)
        order = np.argsort(prefix, kind="stable")
        self._prefix, self._location = prefix[order], location[order]

    # -- reading
    def get(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found, vectors) for an (n, KEY_BYTES) uint8 key array: found (n,) bool, vectors (n, dim) float32
        (zero where not found)."""
        for attempt in range(2):
            self.refresh()
            try:
                return self._get(keys)
            except FileNotFoundError:
                # another process compacted the parts we indexed; its merged part holds every row
                if attempt:
                    raise
                self._reset()
        raise AssertionError("unreachable")

    def _get(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(keys)
        found = np.zeros(n, dtype=bool)
        vectors = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0 or len(self._prefix) == 0:
            return found, vectors
        wanted = _prefixes(keys)
        at = np.minimum(np.searchsorted(self._prefix, wanted), len(self._prefix) - 1)
        hit = self._prefix[at] == wanted
        queries = np.flatnonzero(hit)
        location = self._location[at[queries]]
        part_of, row_of = location >> 32, location & 0xFFFFFFFF
        for part in np.unique(part_of):
            mine = part_of == part
            self._read_rows(self._parts[int(part)], row_of[mine], queries[mine], keys, found, vectors)
        return found, vectors

    def _read_rows(self, path: Path, rows: np.ndarray, queries: np.ndarray, keys: np.ndarray,
                   found: np.ndarray, vectors: np.ndarray) -> None:
        """Fill found/vectors[queries] from the given rows of one part, reading only their row groups."""
        with pq.ParquetFile(path) as part:
            meta = part.metadata
            starts = np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
            group_of = np.searchsorted(starts, rows, side="right") - 1
            for group in np.unique(group_of):
                mine = group_of == group
                table = part.read_row_group(int(group))
                local = rows[mine] - starts[group]
                stored = _key_column(table)[local]
                q = queries[mine]
                # the index matched 8 bytes; a full-key mismatch (a prefix collision) reads as not stored
                same = (stored == keys[q]).all(axis=1)
                found[q[same]] = True
                vectors[q[same]] = _vector_column(table.take(pa.array(local[same])), self.dim)

    # -- writing
    def put(self, keys: np.ndarray, vectors: np.ndarray) -> Path | None:
        """Append the rows as a new part (nothing for no rows); returns its path."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(keys) != len(vectors) or vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"need one ({self.dim},) vector per key, got {vectors.shape} for {len(keys)} keys")
        if len(keys) == 0:
            return None
        table = pa.table({
            "key": pa.FixedSizeBinaryArray.from_buffers(pa.binary(KEY_BYTES), len(keys), [
                None, pa.py_buffer(np.ascontiguousarray(keys, dtype=np.uint8).tobytes())]),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), self.dim),
        }, schema=self.schema)
        path = self._write_part([table])
        self.refresh()
        return path

    def _write_part(self, tables: Iterable[pa.Table]) -> Path:
        """Write the tables as one part under a temporary name, then rename it into place (atomic on one
        file system): a reader lists only finished parts."""
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        tmp = self.folder / f"{TMP_PREFIX}{name}{PART_SUFFIX}"
        try:
            with pq.ParquetWriter(tmp, self.schema, compression="none") as writer:  # floats barely compress
                for table in tables:
                    writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            final = self.folder / f"{PART_PREFIX}{name}{PART_SUFFIX}"
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return final

    def compact(self) -> int:
        """Merge every current part into one (each key once), then remove the parts merged; returns the rows
        kept. Streams row group by row group; memory: the set of keys seen (about 70 bytes per key).

        Safe under concurrent use: parts written after the listing are left alone, the merged part is in
        place before any old part goes, and a reader that loses a part re-reads the folder (see get)."""
        old = self.part_files()
        if len(old) < 2:
            return sum(pq.ParquetFile(p).metadata.num_rows for p in old)
        seen: set[bytes] = set()
        kept = 0

        def deduplicated():
            nonlocal kept
            for path in old:
                with pq.ParquetFile(path) as part:
                    for group in range(part.metadata.num_row_groups):
                        table = part.read_row_group(group)
                        keys = _key_column(table)
                        fresh = []
                        for i, key in enumerate(keys.view(f"S{KEY_BYTES}").ravel().tolist()):
                            if key not in seen:
                                seen.add(key)
                                fresh.append(i)
                        if fresh:
                            kept += len(fresh)
                            yield table.take(pa.array(fresh)).cast(self.schema)

        try:
            self._write_part(deduplicated())
        except FileNotFoundError:
            # another process compacted these parts first; its merged part holds them, nothing to do
            log.info("embedding-cache compaction in %s skipped: another process compacted first", self.folder)
            self._reset()
            return 0
        for path in old:
            path.unlink(missing_ok=True)  # another compaction may have removed it first
        log.info("compacted %d embedding-cache parts into one (%d vectors) in %s", len(old), kept, self.folder)
        self._reset()
        return kept
