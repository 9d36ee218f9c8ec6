"""The review workflow's pages through AppTest: every action, the queue in the URL, and the other pages."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser

import pyarrow.parquet as pq
import pytest
from streamlit.testing.v1 import AppTest

from app import store
from app.ingest import ingest_files
from tests.helpers import ROOT, app_db, intent_turns, make_turn, open_app_page, stored_decisions, write_jsonl

ENTRY = str(ROOT / "app" / "streamlit_app.py")


def conflict_caption(at) -> str:
    """The Agreement page's caption counting the conflicts."""
    return next(c.value for c in at.caption if "whose reviewers disagree" in c.value)


def records() -> list[dict]:
    """helpers.intent_turns, with log text that Markdown would draw as bold."""
    return [{**turn, "asr_text": f"request {d} <b>bold</b>"} for d, turn in enumerate(intent_turns())]


@pytest.fixture
def review_db(tmp_path, monkeypatch):
    return app_db(tmp_path / "review.duckdb", write_jsonl(tmp_path / "log.jsonl", records()), monkeypatch,
                  candidates=True)


def open_page(page: str, reviewer: str | None = "ana", **params) -> AppTest:
    return open_app_page(page, reviewer=reviewer, params=params, timeout=60)


def shown_value(at: AppTest) -> str:
    return at.code[0].value


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label.startswith(label))


def test_review_needs_a_reviewer_name(review_db):
    at = open_page("app_pages/review.py", reviewer=None)
    assert "Enter your name as Reviewer" in at.warning[0].value
    assert not [b for b in at.button if b.label.startswith("Accept")]


def test_accept_reject_skip_and_undo(review_db):
    at = open_page("app_pages/review.py", task="intent")
    assert shown_value(at) == "weather_query"  # lowest score first
    assert next(m for m in at.metric if m.label == "Remaining").value == "3"
    button(at, "Accept").click().run()
    assert shown_value(at) == "music_play"
    assert at.caption[0].value.startswith("Saved: accept")
    button(at, "Reject").click().run()
    assert shown_value(at) == "alarm_set"
    button(at, "Skip").click().run()
    assert shown_value(at) == "alarm_set"  # only the skipped card is left: it comes back
    button(at, "Undo").click().run()  # undo the skip: same card
    button(at, "Undo").click().run()  # undo the reject: music_play is back
    assert shown_value(at) == "music_play"
    assert next(m for m in at.metric if m.label == "Decided by you in this queue").value == "1"
    verdicts = [(v, role) for _, _, v, _, role in stored_decisions(review_db)]
    assert verdicts == [("accept", "review"), ("reject", "review"), ("skip", "review"), ("retract", "review")]


def test_correct_an_intent(review_db):
    at = open_page("app_pages/review.py", task="intent")
    button(at, "Correct").click().run()
    next(s for s in at.selectbox if s.label == "Correct value").set_value("alarm_set").run()
    button(at, "Save correction").click().run()
    assert shown_value(at) == "music_play"
    (_, reviewer, verdict, corrected, _), = stored_decisions(review_db)
    assert (reviewer, verdict, json.loads(corrected)) == ("ana", "correct", "alarm_set")


def test_correct_slots_by_editing_the_spans(review_db):
    at = open_page("app_pages/review.py", task="slots")
    assert shown_value(at) == "place_name = boston"
    button(at, "Correct").click().run()
    assert len(at.data_editor) == 1, "a slot editor is shown"
    assert at.data_editor[0].value.to_dict("records") == [{"type": "place_name", "value": "boston"}]
    # AppTest cannot type into the data editor; saving the spans unchanged is an accept, not a correction
    button(at, "Save correction").click().run()
    (_, _, verdict, corrected, _), = stored_decisions(review_db)
    assert (verdict, corrected) == ("accept", None)


def test_queue_lives_in_the_url(review_db):
    at = open_page("app_pages/review.py", task="intent", order="score_desc", smin="0.3")
    assert shown_value(at) == "alarm_set"  # highest score first
    assert next(m for m in at.metric if m.label == "Remaining").value == "2"  # 0.2 is below smin
    assert at.query_params["order"] in ("score_desc", ["score_desc"])
    assert at.query_params["smin"] in ("0.3", ["0.3"])


def test_bad_queue_link_is_ignored_with_a_warning(review_db):
    at = open_page("app_pages/review.py", order="sideways", smin="2")
    assert at.warning[0].value == "Some queue settings in the link were ignored:"
    texts = " ".join(t.value for t in at.text)
    assert "ignored order='sideways'" in texts and "ignored smin='2'" in texts


def test_a_link_value_that_is_not_valid_unicode_is_ignored_with_a_warning(review_db):
    at = open_page("app_pages/review.py", task="intent", value='"\\ud800"')  # open_page fails on an exception
    assert at.warning[0].value == "Some queue settings in the link were ignored:"
    assert "ignored value='\"\\\\ud800\"': not valid Unicode" in " ".join(t.value for t in at.text)
    assert shown_value(at) == "weather_query"  # the rest of the link still applies: the intent queue


def test_log_text_on_the_card_is_text(review_db):
    at = open_page("app_pages/review.py", task="intent")
    markdown = " ".join(m.value for m in at.markdown)
    assert "<b>bold</b>" not in markdown
    table = [d.value for d in at.dataframe if "component" in d.value.columns][0].set_index("component")
    assert table.loc["ASR", "output"] == "request 0 <b>bold</b>"


def test_read_only_mode_disables_decisions(review_db, monkeypatch):
    monkeypatch.setenv("TURNLENS_READ_ONLY", "1")
    at = open_page("app_pages/review.py", task="intent")
    assert button(at, "Accept").disabled and button(at, "Reject").disabled
    assert "Read-only mode" in at.info[0].value


def test_overlap_and_agreement_and_adjudication(review_db):
    for reviewer, verdict in (("ana", "Accept"), ("bob", "Reject")):
        at = open_page("app_pages/review.py", reviewer=reviewer, task="intent", overlap="2")
        assert shown_value(at) == "weather_query"
        button(at, verdict).click().run()
    at = open_page("app_pages/agreement.py", reviewer="carl")
    table = at.dataframe[0].value.set_index("task")
    assert table.loc["intent", "items"] == 1 and table.loc["intent", "statistic"] == "cohen_kappa"
    assert "1 candidate(s) whose reviewers disagree" in conflict_caption(at)
    next(r for r in at.selectbox if r.label == "Adjudicated label").set_value('"weather_query"')
    at.button(key="settle").click().run()
    assert at.success[0].value.startswith("Settled candidate")
    assert stored_decisions(review_db)[-1][1:] == ("carl", "accept", None, "adjudicate")
    assert "0 candidate(s)" in conflict_caption(at)


def test_bulk_accept_with_audit_and_precision(review_db):
    at = open_page("app_pages/bulk.py", task="intent")
    at.slider(key="bulk_threshold").set_value(0.4).run()
    assert next(m for m in at.metric if m.label == "Would be accepted").value == "2"
    at.button(key="bulk_go").click().run()
    assert at.success[0].value == "Bulk accept #1: 2 accepted; 2 drawn for audit."
    assert [r[2:] for r in stored_decisions(review_db)] == [("accept", None, "bulk")] * 2
    audit = open_page("app_pages/review.py", reviewer="dora", audit="1")
    assert "Auditing the random sample of bulk accept #1" in audit.info[0].value
    button(audit, "Accept").click().run()
    button(audit, "Reject").click().run()
    assert audit.success[0].value.startswith("This queue is empty")
    at = open_page("app_pages/bulk.py")
    row = at.dataframe[0].value.iloc[0]
    assert (row["audited"], row["confirmed"], row["precision"]) == (2, 1, 0.5)


def test_calibration_page(review_db):
    at = open_page("app_pages/review.py", task="intent")
    for verdict in ("Reject", "Accept", "Accept"):
        button(at, verdict).click().run()
    at = open_page("app_pages/calibration.py")
    assert at.get("plotly_chart")
    at.number_input(key="calib_support").set_value(1).run()
    at.slider(key="calib_target").set_value(0.95).run()
    assert next(m for m in at.metric if m.label == "Lowest threshold").value == "0.500"
    assert next(m for m in at.metric if m.label == "Coverage").value == "66.7%"


def test_export_page(review_db):
    at = open_page("app_pages/review.py", task="intent")
    button(at, "Accept").click().run()
    at = open_page("app_pages/export.py")
    at.selectbox(key="export_format").set_value("jsonl").run()
    at.button(key="export_go").click().run()
    assert at.success[0].value == "1 rows ready."
    data = open(at.session_state["export_file"]["path"], encoding="utf-8").read()
    row = json.loads(data.splitlines()[0])
    # typed: the label is a JSON value, not JSON text encoded once more
    assert (row["label"], row["reviewers"], row["model_name"]) == ("weather_query", ["ana"], "logged-nlu")
    assert at.session_state["export_file"]["card"] is None  # a dataset card goes with Parquet only
    at.selectbox(key="export_format").set_value("parquet").run()
    at.button(key="export_go").click().run()
    prepared = at.session_state["export_file"]
    assert pq.read_table(prepared["path"]).to_pylist()[0]["label"] == {"intent": "weather_query"}
    card = open(prepared["card"], encoding="utf-8").read()
    assert prepared["card"].endswith("README.md") and "## Schema" in card and "logged-nlu" in card


def test_password_gate(review_db):
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.secrets["password"] = "s3cret"
    at.run()
    assert at.title[0].value == "turnlens" and not at.metric
    at.text_input(key="password_input").set_value("wrong").run()
    assert at.error[0].value == "Wrong password."
    at.text_input(key="password_input").set_value("s3cret").run()
    assert at.title[0].value == "Overview"


def test_unknown_filter_values_in_a_link_are_reported(review_db):
    at = open_page("app_pages/review.py", task="no_such_task", domain="nowhere")
    assert at.warning[0].value == "Some queue settings in the link were ignored:"
    texts = " ".join(t.value for t in at.text)
    assert "ignored task='no_such_task'" in texts and "ignored domain='nowhere'" in texts


def test_rate_and_app_version_are_recorded(review_db):
    at = open_page("app_pages/review.py", task="intent")
    button(at, "Accept").click().run()
    button(at, "Reject").click().run()
    assert next(m for m in at.metric if m.label == "Your rate").value == "2/h"
    conn = store.connect(review_db)
    try:
        from app import __version__

        assert {r[0] for r in conn.execute("SELECT app_version FROM decisions").fetchall()} == {__version__}
    finally:
        conn.close()


def test_read_only_mode_disables_every_writing_control(review_db, monkeypatch):
    monkeypatch.setenv("TURNLENS_READ_ONLY", "1")
    at = open_page("app_pages/review.py", task="intent")
    assert all(button(at, label).disabled for label in ("Accept", "Reject", "Skip", "Correct", "Undo"))
    bulk = open_page("app_pages/bulk.py", task="intent")
    assert bulk.button(key="bulk_go").disabled


def test_correct_a_boolean_task(tmp_path, monkeypatch):
    path = tmp_path / "bool.duckdb"
    conn = store.connect(path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", [make_turn("g-1", 0)])], dataset="demo")
    from analysis.candidates import read_candidates

    cands = write_jsonl(tmp_path / "c.jsonl", [{"task": "goal_success", "dialogue_id": "g-1", "value": True,
                                                "score": 0.6, "model_name": "goals", "model_version": "1"}])
    store.insert_candidates(conn, read_candidates(cands))
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    at = open_page("app_pages/review.py")
    assert shown_value(at) == "true"
    button(at, "Correct").click().run()
    radio = next(r for r in at.radio if r.label == "Correct value")
    assert radio.value is False  # the opposite of the proposal is offered first
    button(at, "Save correction").click().run()
    (_, _, verdict, corrected, _), = stored_decisions(path)
    assert (verdict, corrected) == ("correct", "false")


def test_correct_a_rewrite(tmp_path, monkeypatch):
    path = tmp_path / "rw.duckdb"
    conn = store.connect(path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", [make_turn("r-1", 0), make_turn("r-1", 1)])],
                 dataset="demo")
    from analysis.candidates import read_candidates

    cands = write_jsonl(tmp_path / "c.jsonl", [{
        "task": "rewrite", "dialogue_id": "r-1", "turn_index": 0, "other_dialogue_id": "r-1", "other_turn_index": 1,
        "value": {"source": "play maj and dragons", "rewrite": "play imagine dragon"}, "score": 0.9,
        "model_name": "rewrite-miner", "model_version": "1"}])
    store.insert_candidates(conn, read_candidates(cands))
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    at = open_page("app_pages/review.py")
    button(at, "Correct").click().run()
    box = next(t for t in at.text_input if t.label == "Correct rewrite")
    assert box.value == "play imagine dragon"
    box.set_value("  ").run()
    assert any("cannot be empty" in e.value for e in at.error)
    next(t for t in at.text_input if t.label == "Correct rewrite").set_value("play  imagine dragons").run()
    button(at, "Save correction").click().run()
    (_, _, verdict, corrected, _), = stored_decisions(path)
    assert verdict == "correct"
    assert json.loads(corrected) == {"source": "play maj and dragons", "rewrite": "play imagine dragons"}


def test_correct_a_coordination_split(tmp_path, monkeypatch):
    """An items card (#18): the reviewer rewrites the item list, one item per line; the stored correction keeps the
    candidate's shape with each item's span found again in the recognised text and exports as a list slot."""
    text = "add bananas peanut butter and paper towels to my list"
    path = tmp_path / "items.duckdb"
    conn = store.connect(path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", [make_turn("i-1", 0, asr_text=text)])], dataset="demo")
    from analysis.candidates import read_candidates
    from analysis.coordination.items import list_slot

    proposed = {"items": ["bananas peanut", "butter", "paper towels"], "spans": [[4, 18], [19, 25], [30, 42]],
                "chunk_scores": [0.6, 0.5, 0.9], "slot_type": "list_item", "logged": []}
    cands = write_jsonl(tmp_path / "c.jsonl", [{"task": "items", "dialogue_id": "i-1", "turn_index": 0,
                                                "value": proposed, "score": 0.5, "model_name": "coordination-chunker",
                                                "model_version": "1"}])
    store.insert_candidates(conn, read_candidates(cands))
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    at = open_page("app_pages/review.py")
    assert shown_value(at) == "bananas peanut | butter | paper towels (list_item)"
    button(at, "Correct").click().run()
    box = next(t for t in at.text_area if t.label == "Correct items, one per line")
    assert box.value == "bananas peanut\nbutter\npaper towels"
    box.set_value("  \n ").run()
    assert any("at least one item" in e.value for e in at.error)
    next(t for t in at.text_area if t.label == "Correct items, one per line").set_value(
        "bananas\npeanut butter\n\npaper towels").run()
    button(at, "Save correction").click().run()
    (_, _, verdict, corrected, _), = stored_decisions(path)
    fixed = json.loads(corrected)
    assert verdict == "correct" and fixed["items"] == ["bananas", "peanut butter", "paper towels"]
    assert [text[a:b] for a, b in fixed["spans"]] == fixed["items"]
    assert list_slot(fixed) == {"type": "list_item", "value": ["bananas", "peanut butter", "paper towels"]}
    # the training-data export carries it as a list-valued slot, in every format: an object in JSON Lines, a
    # struct in Parquet, its JSON text in CSV
    conn = store.connect(path)
    try:
        for fmt in ("jsonl", "csv", "parquet"):
            out = tmp_path / f"labels.{fmt}"
            assert store.export_labels(conn, out, dataset="demo", kind="accepted", fmt=fmt) == 1
            if fmt == "jsonl":
                assert json.loads(out.read_text())["list_slot"] == list_slot(fixed)
            elif fmt == "csv":
                assert json.loads(next(csv.DictReader(out.open()))["list_slot"]) == list_slot(fixed)
            else:
                assert pq.read_table(out).to_pylist()[0]["list_slot"] == list_slot(fixed)
    finally:
        conn.close()


def test_correct_a_transcript(tmp_path, monkeypatch):
    """A rescorer's transcript card: its n-best with both scores on the card, `Correct` edits the words, an empty
    transcript is refused, and the saved correction leaves in the export's transcript column."""
    from analysis.candidates import read_candidates
    from analysis.rescoring.transcripts import candidate_value

    path = tmp_path / "t.duckdb"
    conn = store.connect(path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", [make_turn("r-1", 0, asr_text="play jaz by miles")])],
                 dataset="demo")
    value = candidate_value("play jaz by miles", ["play jaz by miles", "play jazz by miles"], [-1.0, -1.1],
                            [-20.0, -15.0], [-3.0, -2.6], 1, lam=0.1, beta=0.0)
    cands = write_jsonl(tmp_path / "c.jsonl", [{"task": "transcript", "dialogue_id": "r-1", "turn_index": 0,
                                                "value": value, "score": 0.6, "model_name": "nlu-rescorer",
                                                "model_version": "1"}])
    store.insert_candidates(conn, read_candidates(cands))
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    at = open_page("app_pages/review.py")
    assert shown_value(at) == "play jazz by miles"
    sent = cards_sent(at)[0]["html"]
    assert "tl-rescored" in sent and "tl-chosen" in sent
    button(at, "Correct").click().run()
    box = next(t for t in at.text_input if t.label == "Correct transcript")
    assert box.value == "play jazz by miles"
    box.set_value("   ").run()
    assert any("cannot be empty" in e.value for e in at.error)
    next(t for t in at.text_input if t.label == "Correct transcript").set_value("play jazz by Miles Davis").run()
    button(at, "Save correction").click().run()
    (_, _, verdict, corrected, _), = stored_decisions(path)
    fixed = json.loads(corrected)
    assert verdict == "correct" and fixed["text"] == "play jazz by Miles Davis" and fixed["corrected"] is True
    assert fixed["hypotheses"] == value["hypotheses"]  # what the rescorer saw stays with the label
    conn = store.connect(path)
    try:
        for fmt in ("jsonl", "csv"):
            out = tmp_path / f"labels.{fmt}"
            assert store.export_labels(conn, out, dataset="demo", kind="accepted", fmt=fmt) == 1
            row = json.loads(out.read_text()) if fmt == "jsonl" else next(csv.DictReader(out.open()))
            assert row["transcript"] == "play jazz by Miles Davis"
    finally:
        conn.close()


def test_review_card_shows_the_models_probabilities_when_stored(tmp_path, monkeypatch):
    import pyarrow as pa

    from analysis.candidates import CANDIDATE_SCHEMA, canonical_json, target_key

    path = tmp_path / "fp.duckdb"
    conn = store.connect(path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", records())], dataset="demo")
    vector = {"NLU": 0.6, "ASR": 0.3, "NO_FAILURE": 0.04, "TTS": 0.03, "RESPONSE": 0.02, "WAKEWORD": 0.01}
    rows = [{"task": "failure_point", "target_kind": "turn", "dialogue_id": d, "turn_index": 0,
             "other_dialogue_id": None, "other_turn_index": None, "target_key": target_key(d, 0)[1],
             "value": json.dumps("NLU"), "score": 0.6, "distribution": canonical_json(vector) if d == "dlg-0" else None,
             "model_name": "fp", "model_version": "1", "model_parameters": "{}", "run_at": None}
            for d in ("dlg-0", "dlg-1")]
    store.insert_candidates(conn, pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA))
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    at = open_page("app_pages/review.py", task="failure_point")
    assert at.code[0].value == "NLU"
    shown = next(d.value for d in at.dataframe if list(d.value.columns) == ["label", "probability"])
    assert list(shown["label"]) == ["NLU", "ASR", "NO_FAILURE", "TTS", "RESPONSE"]  # top 5, most likely first
    assert list(shown["probability"]) == [0.6, 0.3, 0.04, 0.03, 0.02]
    assert any("top 5 of 6" in c.value for c in at.caption)
    button(at, "Accept").click().run()
    assert [(cid, verdict) for cid, _, verdict, _, _ in stored_decisions(path)] == [(1, "accept")]  # dlg-0's candidate
    # the second card (dlg-1) has no stored vector: no table
    assert not any(list(d.value.columns) == ["label", "probability"] for d in at.dataframe)


# ------------------------------------------------------------------------------------------- the card


class CardHTML(HTMLParser):
    """The elements and the text of a card's HTML: [(tag, classes)], the text of each <mark> (without its
    label), and all the text as shown."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, str]] = []
        self.marks: list[str] = []
        self.text: list[str] = []
        self._open: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        classes = dict(attrs).get("class") or ""
        self.tags.append((tag, classes))
        self._open.append(classes)
        if "tl-span" in classes.split():
            self.marks.append("")

    def handle_endtag(self, tag):
        self._open.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._open and "tl-span" in self._open[-1].split():
            self.marks[-1] += data


def cards_sent(at: AppTest) -> list[dict]:
    """The cards the page sent to the browser's card component: the card on screen first, then the prefetched."""
    node = next(n for n in at._tree if n.type == "bidi_component")
    which = node.proto.WhichOneof("data")
    return json.loads(node.proto.mixed.json if which == "mixed" else node.proto.json)["cards"]


GOLD = {"gold_intent": "secret_true_intent", "gold_slots": [{"type": "room", "value": "secret kitchen"}]}


@pytest.fixture
def span_db(tmp_path, monkeypatch):
    """Two turns whose text and slot values hold markup, with ground truth; the logged NLU's candidates."""
    turns = [make_turn("s-0", 0, asr_text="play <b>jazz</b> & [more](http://evil.test) in the Kitchen",
                       nlu_intent="play_music", nlu_confidence=0.3, timestamp="2026-01-01T10:00:00Z",
                       nlu_slots=[{"type": "genre", "value": "<b>jazz</b>"}, {"type": "room", "value": "kitchen"},
                                  {"type": "date", "value": "tomorrow"}], **GOLD),
             make_turn("s-1", 0, asr_text="wake me at seven", nlu_intent="alarm_set", nlu_confidence=0.6,
                       timestamp="2026-01-02T10:00:00Z", nlu_slots=[{"type": "time", "value": "seven"}], **GOLD)]
    return app_db(tmp_path / "spans.duckdb", write_jsonl(tmp_path / "log.jsonl", turns), monkeypatch,
                  candidates=True)


def test_the_card_highlights_slot_spans_and_keeps_log_text_as_text(span_db):
    at = open_page("app_pages/review.py", task="intent")
    sent = cards_sent(at)
    assert len(sent) == 2  # the card on screen and the next one, prefetched
    html = sent[0]["html"]
    card = CardHTML(html)
    # the log's markup is text: no element but the card's own, the text exactly as logged
    assert {tag for tag, _ in card.tags} <= {"div", "span", "mark", "dl", "dt", "dd"}
    assert "<b>" not in html and "](http" not in html
    shown = "".join(card.text)
    assert "play <b>jazz</b> & [more](http://evil.test) in the Kitchen" in shown.replace("genre", "").replace(
        "room", "")
    # the logged NLU's slots, as spans in the utterance (case kept), each with its type; one not in the text
    assert card.marks == ["<b>jazz</b>", "Kitchen"]
    assert "not in the text: date = tomorrow" in shown
    assert "proposed intent" in shown and "play_music" in shown
    # the next card is drawn from the same code
    assert CardHTML(sent[1]["html"]).marks == ["seven"]


def test_the_slot_task_shows_its_proposed_spans(span_db):
    at = open_page("app_pages/review.py", task="slots")
    card = CardHTML(cards_sent(at)[0]["html"])
    assert card.marks == ["<b>jazz</b>", "Kitchen"]
    assert shown_value(at) == "genre = <b>jazz</b>; room = kitchen; date = tomorrow"


def test_ground_truth_is_hidden_in_review_unless_the_evaluation_view_is_on(span_db):
    at = open_page("app_pages/review.py", task="intent")
    assert at.toggle(key="review_evaluation").value is False  # off by default
    sent = json.dumps(cards_sent(at))
    assert "secret" not in sent
    assert not [e for e in at.expander if "Ground truth" in e.label]
    assert not any("secret" in str(d.value.to_dict()) for d in at.dataframe)
    at.toggle(key="review_evaluation").set_value(True).run()
    assert "ground truth (evaluation view): gold_intent = secret_true_intent" in "".join(
        CardHTML(cards_sent(at)[0]["html"]).text)
    assert [e for e in at.expander if "Ground truth" in e.label]
    # the Dialogues page shows it, as it always did
    dialogues = open_page("app_pages/dialogues.py", dialogue="s-0")
    assert [e for e in dialogues.expander if "Ground truth" in e.label]
