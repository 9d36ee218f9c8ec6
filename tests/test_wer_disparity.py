"""The disparity job's WER normaliser option: its turns, data fingerprint and options follow the normaliser asked
for (else the dataset's default), and the mitigation jobs' groups read the report of the same normaliser."""

from __future__ import annotations

import pytest

from app import store
from app.jobs import groups, registry
from app.store import disparity as store_disparity
from tests.helpers import simulated_db


@pytest.fixture(scope="module")
def conn(tmp_path_factory):
    c = store.connect(simulated_db(tmp_path_factory.mktemp("dpw") / "dp.duckdb", n_turns=600, seed=2, dataset="dp"))
    yield c
    c.close()


def _analyse():
    family = registry.get("disparity")
    return family, next(a for a in family.more if a.name == "analyse")


def test_the_job_reads_the_turns_under_the_normaliser_asked_for(conn):
    family, analyse = _analyse()
    option = next(o for o in family.options if o.name == "normaliser")
    assert option.parse(None) == "" and option.parse("raw") == "raw"
    with pytest.raises(ValueError, match="normaliser: choose one of"):
        option.parse("whisper")
    raw_turns, _, raw_print, raw_name = analyse.read(conn, "dp", {"normaliser": "raw"})
    turns, _, fingerprint, name = analyse.read(conn, "dp", {"normaliser": ""})
    assert (raw_name, name) == ("raw", "english-v1")  # empty: the dataset's default, english-v1 for a new one
    # raw keeps the fingerprint's form from before m010; another normaliser is named in it
    assert raw_print == store_disparity.get_data_fingerprint(conn, "dp", "raw") and raw_print.count(":") == 2
    assert fingerprint.startswith("turns:english-v1:")
    assert fingerprint == store_disparity.get_data_fingerprint(conn, "dp")
    assert raw_turns.column("wer_ref_words").to_pylist() == store.list_speaker_turns(conn, "dp", "raw").column(
        "wer_ref_words").to_pylist()
    assert turns.column("wer_ref_words").to_pylist() == store.list_speaker_turns(conn, "dp").column(
        "wer_ref_words").to_pylist()
    raw_errors = sum(raw_turns.column(c).to_numpy().sum() for c in ("wer_sub", "wer_del", "wer_ins"))
    errors = sum(turns.column(c).to_numpy().sum() for c in ("wer_sub", "wer_del", "wer_ins"))
    assert errors != raw_errors  # the simulated texts hold clitics and numbers the normaliser changes


def test_the_mitigation_groups_look_for_the_report_of_their_normaliser(conn):
    option = next(o for o in groups.OPTIONS if o.name == "normaliser")
    assert option.choices == ("", "raw", "english-v1")
    # no report is stored for either normaliser: the refusal says to run the analysis first
    for normaliser in ("", "raw"):
        with pytest.raises(ValueError, match="no stored disparity report for its current data"):
            groups.report_groups(conn, "dp", {"cohorting": "automatic", "group": "", "report_id": 0,
                                              "normaliser": normaliser})
