"""Every page through Streamlit's AppTest, with assertions on what it shows."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from analysis import rates
from app import store
from app.ingest import ingest_files
from components import charts
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
    # raw as the dataset's WER normaliser, so the figures below count "what is" for "what's" as errors; the
    # english-v1 default of a new dataset is tested in test_wer_pages.py
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", dialogue_records())], dataset="demo",
                 wer_normaliser="raw")
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


def chart(at: AppTest, key: str) -> dict:
    """The figure of the Plotly chart with this key, as the browser receives it."""
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def values(trace: dict, axis: str) -> list:
    """A trace's x or y values (Plotly sends numeric arrays base64-encoded, as {"dtype", "bdata"})."""
    v = trace[axis]
    return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist() if isinstance(v, dict) else v


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
    assert metric(at, "Pooled WER (raw)") == f"{8 / 11:.1%}"
    # one chart per failure signal, pooled WER on a chart of its own, and the signals over time
    assert {c.key for c in at.get("plotly_chart")} == {"ov_unhandled", "ov_error", "ov_barge_in",
                                                        "ov_negative_feedback", "ov_wer", "signals_over_time"}
    assert at.sidebar.selectbox[0].value == "demo"


def test_overview_bars_carry_counts_and_dialogue_intervals(app_db):
    at = run_page()
    unhandled = chart(at, "ov_unhandled")["data"][0]
    # highest rate first, each row labelled with turns with it / turns
    assert unhandled["y"] == ["weather · 1/2", "general · 0/1", "music · 0/1"]
    weather = unhandled["customdata"][0]
    # one dialogue: each dialogue counts as one observation, so the interval is Wilson's on n = 1
    assert weather[:7] == ["unhandled", "weather", 0, 1, 2, 1, 1]
    assert weather[7:] == pytest.approx(list(rates.wilson(0.5, 1, 1.959963984540054)))
    assert values(unhandled, "x") == [0.5, 0.0, 0.0]
    assert "95% CI" in unhandled["hovertemplate"] and "dialogues" in unhandled["hovertemplate"]
    # pooled WER: its own chart, its own axis, worst first: xss-1 6/2, weather-1 2/7, music-1 0/2
    wer = chart(at, "ov_wer")
    assert wer["data"][0]["y"] == ["general · 2 words", "weather · 7 words", "music · 2 words"]
    assert values(wer["data"][0], "x") == pytest.approx([3.0, 2 / 7, 0.0])
    assert "WER" in wer["layout"]["xaxis"]["title"]["text"]
    assert all("WER" not in t.get("name", "") for t in chart(at, "ov_unhandled")["data"])
    over_time = chart(at, "signals_over_time")["data"]
    assert {t["yaxis"] for t in over_time if t["name"] == "pooled WER (raw)"} == {"y2"}
    assert {t.get("yaxis", "y") for t in over_time if t["name"] != "pooled WER (raw)"} == {"y"}
    # the same figures as tables
    table = at.dataframe[0].value
    row = table[(table["group"] == "weather") & (table["event"] == "unhandled")].iloc[0]
    assert (row["events"], row["turns"], row["dialogues"]) == (1, 2, 1)


def overview_records() -> list[dict]:
    """65 one-turn dialogues: social (3) and no domain (2) always unhandled, dwarfing weather, music and news
    (20 each, one unhandled in each); a weather dialogue with a high WER; a music barge-in on a successful
    response; a music turn with negative feedback."""
    start, out = datetime(2026, 1, 1, tzinfo=UTC), []

    def add(dialogue: str, domain: str | None, **fields) -> None:
        when = (start + timedelta(minutes=len(out))).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append(make_turn(dialogue, 0, timestamp=when, nlu_domain=domain, **fields))

    for i in range(3):
        add(f"social-{i}", "social", response_status="unhandled")
    for i in range(2):
        add(f"none-{i}", None, response_status="unhandled")
    for domain in ("weather", "music", "news"):
        for i in range(20):
            add(f"{domain}-{i}", domain, response_status="unhandled" if i == 0 else "success",
                asr_text="whether boss ten" if (domain, i) == ("weather", 1) else "what is the weather in boston",
                barge_in=(domain, i) == ("music", 1), user_feedback="negative" if (domain, i) == ("music", 2) else None)
    return out


@pytest.fixture
def overview_db(tmp_path, monkeypatch):
    path = tmp_path / "overview.duckdb"
    conn = store.connect(path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", overview_records())], dataset="demo")
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    return path


def click(at: AppTest, key: str, domain: str | None, trace: int = 0) -> AppTest:
    """What a click on the bar of ``domain`` (None: no domain) in chart ``key`` sets: the chart's selection state,
    with the point's own customdata (as st.plotly_chart reports it)."""
    data = chart(at, key)["data"][trace]
    k = next(i for i, c in enumerate(data["customdata"]) if (c[1], c[2]) == (domain or "", int(domain is None)))
    at.session_state[key] = {"selection": {"points": [{"y": data["y"][k], "customdata": data["customdata"][k]}],
                                           "point_indices": [k], "box": [], "lasso": []}}
    at.run()
    assert not at.exception, at.exception
    return at


def listed(at: AppTest) -> list[str]:
    return at.dataframe[0].value["dialogue_id"].tolist()


def test_overview_uses_a_log_axis_where_one_domain_dwarfs_the_rest(overview_db):
    at = run_page()
    unhandled = chart(at, "ov_unhandled")
    assert unhandled["layout"]["xaxis"]["type"] == "log"
    # sorted: the two at 100% on top
    assert unhandled["data"][0]["y"][:3] == ["social · 3/3", f"{charts.NO_DOMAIN} · 2/2", "music · 1/20"]
    assert chart(at, "ov_barge_in")["layout"]["xaxis"]["type"] == "linear"  # nothing dwarfs there
    at.toggle(key="ov_log").set_value(False).run()
    assert chart(at, "ov_unhandled")["layout"]["xaxis"]["type"] == "linear"


def test_a_bar_opens_its_domains_dialogues_with_the_signal(overview_db):
    at = click(run_page(), "ov_unhandled", "social")
    assert at.title[0].value == "Dialogues"
    assert at.selectbox(key="flt_domain").value == "social" and at.selectbox(key="flt_status").value == "unhandled"
    assert sorted(listed(at)) == ["social-0", "social-1", "social-2"]
    assert at.query_params["domain"] in ("social", ["social"]) and at.query_params["status"] in ("unhandled",
                                                                                                 ["unhandled"])
    # back on the Overview, the click is not followed again
    at.switch_page("app_pages/overview.py").run()
    assert at.title[0].value == "Overview"


def test_the_no_domain_bar_and_the_other_signals_open_their_dialogues(overview_db):
    at = click(run_page(), "ov_unhandled", None)
    assert at.selectbox(key="flt_domain").value == charts.NO_DOMAIN
    assert sorted(listed(at)) == ["none-0", "none-1"]
    at = click(run_page(), "ov_barge_in", "music")
    assert at.checkbox(key="flt_barge").value is True and listed(at) == ["music-1"]
    at = click(run_page(), "ov_negative_feedback", "music")
    assert at.selectbox(key="flt_feedback").value == "negative" and listed(at) == ["music-2"]


def test_a_wer_bar_opens_the_domains_dialogues_highest_wer_first(overview_db):
    at = click(run_page(), "ov_wer", "weather")
    assert at.title[0].value == "Dialogues" and at.selectbox(key="flt_domain").value == "weather"
    assert at.segmented_control(key="flt_sort").value == "wer"
    rows = at.dataframe[0].value
    assert rows["dialogue_id"].iloc[0] == "weather-1" and rows["pooled_wer"].is_monotonic_decreasing
    assert len(rows) == 20


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
    at.text_input(key="import_dataset").set_value("pilot")
    at.button[0].click().run()
    assert "Nothing was imported: 1 problem(s)." == at.error[0].value
    assert at.code[0].value == "bad.jsonl:2: er_status: unknown value 'nope'; expected one of resolved, " \
                               "unresolved, not_applicable"
    conn = store.connect(app_db)
    try:
        assert store.count_turns(conn) == 4
    finally:
        conn.close()


def test_the_import_dataset_field_starts_empty_and_must_be_filled(app_db):
    """A real log must not land in the demo dataset that happens to be selected: the field starts empty, and
    an import without a name is refused, writing nothing."""
    at = run_page("app_pages/import_logs.py", reviewer="ana")
    assert at.session_state["dataset"]  # a dataset is selected in the sidebar ...
    assert at.text_input(key="import_dataset").value == ""  # ... and the import does not default to it
    at.file_uploader[0].set_value(("new.jsonl", json.dumps(make_turn("new-1", 0)).encode(), "application/json"))
    conn = store.connect(app_db)
    before = store.count_turns(conn)
    conn.close()
    at.button[0].click().run()
    assert at.error[0].value == "The dataset name must not be empty."
    conn = store.connect(app_db)
    try:
        assert store.count_turns(conn) == before
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


def test_dialogue_list_shows_wer_and_failure_and_counts_barge_ins_apart(overview_db):
    at = run_page("app_pages/dialogues.py")
    table = at.dataframe[0]
    labels = {c: cfg.get("label") for c, cfg in json.loads(table.proto.columns).items()}
    # a new dataset's WER is under english-v1, and the header says so
    assert labels["pooled_wer"] == "WER (english-v1)" and labels["has_failure"] == "failure" and \
        labels["barge_ins"] == "barge-ins"
    # the short columns first: they show without scrolling the list sideways
    assert list(table.proto.column_order)[:4] == ["dialogue_id", "pooled_wer", "has_failure", "barge_ins"]
    at.selectbox(key="flt_domain").set_value("music").run()
    rows = at.dataframe[0].value.set_index("dialogue_id")
    # music-1: the user barged in on a successful response: a barge-in, not a failure
    assert rows.loc["music-1", "barge_ins"] == 1 and not rows.loc["music-1", "has_failure"]
    assert rows.loc["music-0", "has_failure"] and rows.loc["music-0", "failed_turns"] == 1
    assert rows.loc["music-1", "pooled_wer"] == 0  # "what is" for "what's": the same under english-v1
    assert "a barge-in" in at.caption[0].value and "not as a failure" in at.caption[0].value


def test_the_turn_view_labels_a_barge_in_as_such(overview_db):
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.query_params["dialogue"] = "music-1"  # the list shows its first page only; a link opens any dialogue
    at.run()
    at.switch_page("app_pages/dialogues.py").run()
    user = component_tables(at)[0].loc["User"]
    assert user["output"] == "barge-in" and user["status"] == "interrupted"


def test_dialogue_failure_feedback_and_order_filters_live_in_the_url(overview_db):
    at = run_page("app_pages/dialogues.py")
    at.checkbox(key="flt_failed").check().run()
    assert sorted(listed(at)) == ["music-0", "news-0", "none-0", "none-1", "social-0", "social-1", "social-2",
                                  "weather-0"]
    assert at.query_params["failed"] in ("1", ["1"])
    at.checkbox(key="flt_failed").uncheck()
    at.selectbox(key="flt_feedback").set_value("negative").run()
    assert listed(at) == ["music-2"] and at.query_params["feedback"] in ("negative", ["negative"])
    at.selectbox(key="flt_feedback").set_value("(any)")
    at.segmented_control(key="flt_sort").set_value("wer").run()
    assert listed(at)[0] == "weather-1" and at.query_params["sort"] in ("wer", ["wer"])
    # a link with an order or a value that does not exist is ignored, and says so
    linked = AppTest.from_file(ENTRY, default_timeout=60)
    linked.query_params["sort"] = "started; DROP TABLE turns"
    linked.query_params["feedback"] = "furious"
    linked.run()
    linked.switch_page("app_pages/dialogues.py").run()
    assert not linked.exception
    warnings = [w.value for w in linked.warning]
    assert "Ignoring the link's sort order: no such order." in warnings
    assert "Ignoring the link's feedback filter: no such value in this dataset." in warnings
    assert linked.segmented_control(key="flt_sort").value == "newest" and len(listed(linked)) == 25
