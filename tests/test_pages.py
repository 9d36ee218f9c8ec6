"""Every page through Streamlit's AppTest, with assertions on what it shows."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from app import store
from app.ingest import ingest_files
from tests.helpers import ROOT, make_turn, write_jsonl

ENTRY = str(ROOT / "app" / "streamlit_app.py")
XSS = "<script>alert(1)</script> <img src=x onerror=alert(2)> [click](http://evil.example) **bold**"


def dialogue_records() -> list[dict]:
    return [
        make_turn("weather-1", 0, timestamp="2026-01-05T10:00:00Z"),
        make_turn("weather-1", 1, timestamp="2026-01-05T10:00:20Z", asr_text="and tomorrow",
                  reference_text="and tomorrow", response_status="unhandled",
                  response_text="Sorry, I don't know that one", barge_in=True),
        make_turn("music-1", 0, timestamp="2026-01-06T09:00:00Z", asr_text="play jazz", reference_text="play jazz",
                  nlu_domain="music", nlu_intent="music_play", response_skill="music.player",
                  response_text="Playing jazz.", user_id="u2"),
        make_turn("xss-1", 0, timestamp="2026-01-07T08:00:00Z", asr_text=XSS, reference_text="hello there",
                  nlu_domain="general", nlu_intent="general_quirky", response_text=XSS, user_id="u3"),
    ]


@pytest.fixture
def app_db(tmp_path, monkeypatch):
    path = tmp_path / "app.duckdb"
    conn = store.connect(path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", dialogue_records())], dataset="demo")
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    return path


def run_page(page: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, at.exception
    return at


def component_tables(at: AppTest) -> list:
    """The per-turn component tables of the dialogue view, in turn order."""
    return [d.value.set_index("component") for d in at.dataframe if "component" in d.value.columns]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_overview_shows_counts_wer_and_charts(app_db):
    at = run_page()
    assert at.title[0].value == "Overview"
    assert metric(at, "Turns") == "4"
    assert metric(at, "Dialogues") == "3"
    assert metric(at, "Users") == "3"
    assert metric(at, "Unhandled") == "25.0%"
    assert metric(at, "Barge-ins") == "25.0%"
    # pooled WER: 2 errors ("what is" for "what's") over 5 words, + 0/2 + 0/2 + 6/2 ("hello there" against
    # the 6 words of the XSS text: 2 substitutions, 4 insertions) = (2 + 0 + 0 + 6) / (5 + 2 + 2 + 2)
    assert metric(at, "Pooled WER") == f"{8 / 11:.1%}"
    charts = at.get("plotly_chart")
    assert len(charts) == 3
    spec = json.loads(charts[0].proto.spec)
    assert {trace["name"] for trace in spec["data"]} == {"unhandled", "skill error", "barge-in",
                                                         "negative feedback"}
    assert set(spec["data"][0]["x"]) == {"weather", "music", "general"}
    assert at.sidebar.selectbox[0].value == "demo"


def test_overview_without_data_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TURNLENS_DB", str(tmp_path / "empty.duckdb"))
    at = run_page()
    assert "No data yet" in at.sidebar.info[0].value
    assert "There is no data yet" in at.info[0].value


def test_dialogues_lists_filters_and_shows_components(app_db):
    at = run_page("app_pages/dialogues.py")
    listing = at.dataframe[0].value
    assert list(listing["dialogue_id"]) == ["xss-1", "music-1", "weather-1"]  # newest first
    assert "3 dialogues match" in at.caption[0].value

    at.selectbox(key="flt_domain").set_value("weather").run()
    assert list(at.dataframe[0].value["dialogue_id"]) == ["weather-1"]
    assert at.query_params["domain"] == ["weather"] if isinstance(at.query_params["domain"], list) \
        else at.query_params["domain"] == "weather"
    # the turn-by-turn view of the selected dialogue: one component table per turn
    tables = component_tables(at)
    assert len(tables) == 2
    second = tables[1]
    assert second.loc["Response", "output"] == "Sorry, I don't know that one"
    assert second.loc["Response", "status"] == "FAILED"
    assert second.loc["User", "output"] == "barge-in"
    assert second.loc["ASR", "output"] == "and tomorrow"
    # the ASR/reference alignment of the first turn marks one insertion and one substitution
    ref, hyp, ops = at.code[0].value.splitlines()
    assert ref == "REF: ***  what's the weather in boston"
    assert hyp == "HYP: what is     the weather in boston"
    assert ops.split() == ["I", "S"]


def test_dialogues_text_search(app_db):
    at = run_page("app_pages/dialogues.py")
    at.text_input(key="flt_q").set_value("JAZZ").run()
    assert list(at.dataframe[0].value["dialogue_id"]) == ["music-1"]
    at.text_input(key="flt_q").set_value("100%_none").run()
    assert at.info[0].value == "No dialogue matches these filters."


def test_log_text_is_never_rendered_as_markdown(app_db):
    at = run_page("app_pages/dialogues.py")
    at.selectbox(key="open_dialogue").set_value("xss-1").run()
    table = component_tables(at)[0]
    assert table.loc["ASR", "output"] == XSS
    assert table.loc["Response", "output"] == XSS
    markdown = " ".join(m.value for m in at.markdown)
    assert "<script>" not in markdown and "evil.example" not in markdown


def test_dialogue_link_opens_that_dialogue(app_db):
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.query_params["dialogue"] = "music-1"
    at.run()
    at.switch_page("app_pages/dialogues.py").run()
    assert at.selectbox(key="open_dialogue").value == "music-1"
    assert component_tables(at)[0].loc["ASR", "output"] == "play jazz"


def test_unknown_filter_in_link_is_ignored_visibly(app_db):
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.query_params["domain"] = "no-such-domain"
    at.run()
    at.switch_page("app_pages/dialogues.py").run()
    assert "Ignoring the link's domain filter" in at.warning[0].value
    assert len(at.dataframe[0].value) == 3


def test_import_page_imports_a_valid_upload(app_db):
    at = run_page("app_pages/import_logs.py", reviewer="ana")
    body = "\n".join(json.dumps(make_turn("new-1", i, timestamp=f"2026-02-01T10:0{i}:00Z")) for i in range(3))
    at.file_uploader[0].set_value(("new.jsonl", body.encode(), "application/json"))
    at.text_input(key="import_dataset").set_value("demo")
    at.button[0].click().run()
    assert not at.exception
    assert at.success[0].value == "3 turns read, 3 added, 0 already present."
    bar = at.get("progress")
    assert len(bar) == 1 and bar[0].proto.value == 100 and bar[0].proto.text == "Done"  # the progress bar ran
    history = at.dataframe[0].value
    assert history.iloc[0]["imported_by"] == "ana"
    assert json.loads(history.iloc[0]["sources"]) == ["new.jsonl"]


def test_import_page_refuses_a_bad_upload_and_lists_problems(app_db):
    at = run_page("app_pages/import_logs.py")
    body = json.dumps(make_turn("bad-1", 0)) + "\n" + json.dumps(make_turn("bad-1", 1, er_status="nope"))
    at.file_uploader[0].set_value(("bad.jsonl", body.encode(), "application/json"))
    at.button[0].click().run()
    assert "Nothing was imported: 1 problem(s)." == at.error[0].value
    assert at.code[0].value == "bad.jsonl:2: er_status: unknown value 'nope'; expected one of resolved, " \
                               "unresolved, not_applicable"
    conn = store.connect(app_db)
    try:
        assert store.count_turns(conn) == 4
    finally:
        conn.close()


def test_import_page_is_off_in_read_only_mode(app_db, monkeypatch):
    monkeypatch.setenv("TURNLENS_READ_ONLY", "1")
    at = run_page("app_pages/import_logs.py")
    assert "read-only" in at.info[0].value
    assert len(at.file_uploader) == 0


def test_barge_in_filter_lives_in_the_url(app_db):
    at = run_page("app_pages/dialogues.py")
    at.checkbox(key="flt_barge").check().run()
    assert list(at.dataframe[0].value["dialogue_id"]) == ["weather-1"]
    assert at.query_params["barge"] in ("1", ["1"])
    linked = AppTest.from_file(ENTRY, default_timeout=60)
    linked.query_params["barge"] = "1"
    linked.run()
    linked.switch_page("app_pages/dialogues.py").run()
    assert linked.checkbox(key="flt_barge").value is True
    assert list(linked.dataframe[0].value["dialogue_id"]) == ["weather-1"]
