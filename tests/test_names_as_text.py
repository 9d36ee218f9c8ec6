"""Names from data and people (dataset, reviewer and model names, log text) are shown as text on every page:
never as Markdown, where a name could show a live link, bold or coloured text. AppTest of each page on a
database whose names are Markdown, checking every element that renders Markdown."""

from __future__ import annotations

import json
import shlex
import uuid

import pyarrow as pa
import pytest

from analysis.candidates import CANDIDATE_SCHEMA, target_key
from app import store
from app.ingest import ingest_files
from components.markdown import escape_markdown
from tests.helpers import make_turn, open_app_page, write_jsonl

# Bold, a link, a colour directive, an emoji-free icon directive and a heading: each renders if taken as Markdown.
DATASET = "**x** [link](http://evil.test) :red[y] :material/bolt: `c` $z$"
MODEL = "**m** [run](http://evil.test/m) :blue[v]"
VERSION = "_1_ [v](http://evil.test/v)"
REVIEWER = "**eve** [me](http://evil.test/r) :green[ok]"
INTENT = "**intent** [i](http://evil.test/i)"
TEXT = "**bold request** [click](http://evil.test/t) :red[alarm]"
HOSTILE = (DATASET, MODEL, VERSION, REVIEWER, INTENT, TEXT)

# Elements that show their strings as text (Streamlit renders no Markdown in them); every other element's
# strings (markdown, captions, alerts, titles, metric labels and values, help, widget labels, radio options,
# expander labels, page links...) must not hold a name as is.
# (Plotly renders no Markdown; components/charts.py escapes the HTML it does render.)
TEXT_ELEMENTS = {"text", "code", "selectbox", "multiselect", "dataframe", "arrow_data_frame", "text_input",
                 "text_area", "json", "plotly_chart"}

PAGES = ["app_pages/overview.py", "app_pages/review.py", "app_pages/agreement.py", "app_pages/bulk.py",
         "app_pages/calibration.py", "app_pages/export.py", "app_pages/failures.py", "app_pages/labels.py",
         "app_pages/skills.py", "app_pages/rewrites.py", "app_pages/disparity.py", "app_pages/dialogues.py",
         "app_pages/compare_runs.py", "app_pages/coordination.py", "app_pages/rescoring.py"]


def candidate(dialogue: str, value, score: float, *, model: str = MODEL) -> dict:
    kind, key = target_key(dialogue, 0)
    return {"task": "intent", "target_kind": kind, "dialogue_id": dialogue, "turn_index": 0,
            "other_dialogue_id": None, "other_turn_index": None, "target_key": key, "value": json.dumps(value),
            "score": score, "model_name": model, "model_version": VERSION, "model_parameters": "{}", "run_at": None}


@pytest.fixture
def hostile_db(tmp_path, monkeypatch):
    """The app's database: dataset DATASET whose turns carry TEXT and INTENT, candidates of model MODEL, and
    decisions of REVIEWER and "ana" that disagree on one candidate (a conflict) and agree on another."""
    path = tmp_path / "names.duckdb"
    conn = store.connect(path)
    turns = [make_turn(f"d{i}", 0, asr_text=TEXT, nlu_intent=INTENT, nlu_domain=INTENT, user_id=REVIEWER,
                       speaker_id=MODEL) for i in range(4)]
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", turns)], dataset=DATASET, imported_by=REVIEWER)
    rows = [candidate(f"d{i}", INTENT, 0.2 + 0.2 * i) for i in range(4)]
    store.insert_candidates(conn, pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA))
    first, second = (r[0] for r in conn.execute("SELECT candidate_id FROM candidates ORDER BY candidate_id "
                                                "LIMIT 2").fetchall())
    for cid, verdicts in ((first, ("accept", "reject")), (second, ("accept", "accept"))):
        for reviewer, verdict in zip((REVIEWER, "ana"), verdicts, strict=True):
            store.insert_decision(conn, decision_id=str(uuid.uuid4()), candidate_id=cid, reviewer=reviewer,
                                  verdict=verdict)
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    return path


def strings(message) -> list[str]:
    """Every string held in a protobuf message, its sub-messages and lists included."""
    out = []
    for _field, value in message.ListFields():
        if isinstance(value, str | bytes | int | float) or hasattr(value, "ListFields"):
            values = [value]
        else:  # a repeated field or a map
            values = list(value.values()) if hasattr(value, "values") else list(value)
        for v in values:
            if isinstance(v, str):
                out.append(v)
            elif hasattr(v, "ListFields"):
                out.extend(strings(v))
    return out


def markdown_strings(at) -> list[tuple[str, str]]:
    """(element type, string) for every string of every element or block that may render Markdown."""
    found = []
    for node in at._tree:
        if node.type in TEXT_ELEMENTS or getattr(node, "proto", None) is None:
            continue
        found.extend((node.type, s) for s in strings(node.proto))
    return found


@pytest.mark.parametrize("page", PAGES)
def test_no_name_reaches_markdown(hostile_db, page):
    at = open_app_page(page, reviewer=REVIEWER, state={"dataset": DATASET}, params={"dataset": DATASET})
    leaks = [(kind, s) for kind, s in markdown_strings(at) for name in HOSTILE if name in s]
    assert not leaks, leaks


@pytest.mark.parametrize("page, names", [
    ("app_pages/review.py", {MODEL, VERSION, INTENT, TEXT}), ("app_pages/agreement.py", {INTENT, TEXT}),
    ("app_pages/dialogues.py", {TEXT, REVIEWER, MODEL})])
def test_the_names_are_there_as_text(hostile_db, page, names):
    """The check above is not vacuous: these pages do show the names, in text elements."""
    at = open_app_page(page, reviewer=REVIEWER, state={"dataset": DATASET}, params={"dataset": DATASET})
    shown = " ".join(s for node in at._tree if node.type in TEXT_ELEMENTS and getattr(node, "proto", None)
                     for s in strings(node.proto))
    assert all(name in shown for name in names)


def test_the_rewrites_page_names_the_dataset_as_text(hostile_db):
    at = open_app_page("app_pages/rewrites.py", reviewer=REVIEWER, state={"dataset": DATASET})
    # in the command to run, as code (quoted for the shell)
    assert [c.value for c in at.code] == [f"turnlens mine rewrites --dataset {shlex.quote(DATASET)}"]


def test_escape_markdown():
    assert escape_markdown("**x** [l](http://e) :red[y]") == r"\*\*x\*\* \[l\]\(http\:\/\/e\) \:red\[y\]"
    assert escape_markdown("plain text 123") == "plain text 123"
    assert escape_markdown("a\\b $c$ `d` <b>") == r"a\\b \$c\$ \`d\` \<b\>"
