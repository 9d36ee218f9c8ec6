"""The Overview page reads its per-domain sums once per dataset and write (resources.overview), not on every rerun,
and shows new turns after a write clears the cached reads."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app import resources, store
from app.ingest import ingest_files
from tests.helpers import ROOT, make_turn, write_jsonl

ENTRY = str(ROOT / "app" / "streamlit_app.py")


@pytest.fixture
def db(tmp_path, monkeypatch):
    path = tmp_path / "overview-cache.duckdb"
    conn = store.connect(path)
    ingest_files(conn, [write_jsonl(tmp_path / "a.jsonl", [make_turn("d1", 0), make_turn("d2", 0)])],
                 dataset="demo")
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    return path


def turns_metric(at: AppTest) -> str:
    return next(m.value for m in at.metric if m.label == "Turns")


def test_reruns_reuse_the_domain_sums_and_a_write_refreshes_them(db, tmp_path, monkeypatch):
    calls = []
    real = store.list_domain_signal_sums

    def counting(conn, dataset):
        calls.append(dataset)
        return real(conn, dataset)

    monkeypatch.setattr(store, "list_domain_signal_sums", counting)
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.run()
    assert not at.exception and turns_metric(at) == "2"
    at.run()
    at.toggle(key="ov_log").set_value(False).run()  # reruns of the same data read nothing again
    assert calls == ["demo"]

    # a write (here an ingest beside the app, as the Import page does) clears the reads: the new turn shows
    conn = resources.get_connection(str(db))
    ingest_files(conn, [write_jsonl(tmp_path / "b.jsonl", [make_turn("d3", 0)])], dataset="demo")
    resources.clear_reads()
    at.run()
    assert turns_metric(at) == "3" and calls == ["demo", "demo"]
