"""Names from people and data (analysis.names): one stored form, look-alikes refused; and the store keeping
reviewer names in that form, so `alice` and `alice` + a zero-width space are one reviewer."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest

from analysis.candidates import CANDIDATE_SCHEMA
from analysis.names import (
    MAX_NAME_CHARS,
    InvalidNameError,
    check_new_name,
    find_lookalike,
    lookalike_key,
    normalise_name,
)
from app import store
from app.ingest import ingest_files
from tests.helpers import make_turn, write_jsonl
from tests.test_review_store import candidate_rows

ZWSP, ZWJ, RLO, SOFT_HYPHEN = "\u200b", "\u200d", "\u202e", "\u00ad"


@pytest.mark.parametrize("typed, stored", [
    ("alice", "alice"),
    ("  alice \n", "alice"),  # trimmed
    ("alice" + ZWSP, "alice"), (ZWJ + "ali" + SOFT_HYPHEN + "ce", "alice"),  # zero-width and format chars removed
    ("ali\x00ce\x07", "alice"), ("alice" + RLO, "alice"),  # control characters and bidi overrides removed
    ("ａｌｉｃｅ", "alice"), ("ﬁona", "fiona"),  # NFKC: full-width letters, ligatures
    ("alice  \t smith", "alice smith"), ("alice\u00a0smith", "alice smith"),  # white space folded
    ("Alice", "Alice"), ("José", "José"),  # case and accents are kept: they are part of the name
])
def test_normalise_name(typed, stored):
    assert normalise_name(typed) == stored
    assert normalise_name(stored) == stored  # idempotent


@pytest.mark.parametrize("bad, why", [
    ("", "must not be empty"), ("   ", "must not be empty"), (ZWSP + ZWJ, "must not be empty"),
    ("a" * (MAX_NAME_CHARS + 1), "at most"), ("ali\ud800ce", "not valid Unicode"), (None, "must be text"),
])
def test_unusable_names_are_refused(bad, why):
    with pytest.raises(InvalidNameError, match=why):
        normalise_name(bad)
    assert issubclass(InvalidNameError, ValueError)


@pytest.mark.parametrize("other", [
    "ALICE", "Alice",  # case
    "\u0430lice", "\u0430l\u0456c\u0435",  # Cyrillic а, і, е
    "a1ice", "a|ice",  # digits and bars shaped like l
    "alíce", "a.lice", "al ice", "al_ice",  # accents, dots, spaces and underscores
])
def test_lookalikes_are_found_and_refused(other):
    assert lookalike_key(other) == lookalike_key("alice")
    assert find_lookalike(other, ["bob", "alice"]) == "alice"
    with pytest.raises(InvalidNameError, match="looks like the existing reviewer name 'alice'"):
        check_new_name(other, ["alice", "bob"])


def test_a_digit_one_for_an_i_is_a_lookalike():
    assert find_lookalike("al1ce", ["alice"]) == "alice"


@pytest.mark.parametrize("name", ["bob", "alicia", "alice smith", "ana", "anna", "carl"])
def test_distinct_names_pass(name):
    assert check_new_name(name, ["alice", "bobby", "alic"]) == name


def test_the_same_name_in_another_form_is_the_same_reviewer_not_a_lookalike():
    assert check_new_name("alice" + ZWSP, ["alice"]) == "alice"
    assert check_new_name(" ａｌｉｃｅ ", ["alice"]) == "alice"
    assert find_lookalike("alice", ["alice"]) is None


# ------------------------------------------------------------------------------------------------- store


@pytest.fixture
def ndb(db, tmp_path):
    ingest_files(db, [write_jsonl(tmp_path / "log.jsonl", [make_turn(f"d{i}", 0) for i in range(3)])], dataset="t")
    rows = candidate_rows("m1", ["a", "b", "c"], [0.2, 0.5, 0.9])
    store.insert_candidates(db, pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA))
    return db


def test_decisions_store_the_normalised_reviewer_name(ndb):
    cid = ndb.execute("SELECT min(candidate_id) FROM candidates").fetchone()[0]
    for typed in ("alice" + ZWSP, " ａｌｉｃｅ", "alice"):
        assert store.insert_decision(ndb, decision_id=str(uuid.uuid4()), candidate_id=cid, reviewer=typed,
                                     verdict="accept")
    assert {r[0] for r in ndb.execute("SELECT reviewer FROM decisions").fetchall()} == {"alice"}
    assert store.list_reviewers(ndb) == ["alice"]
    # one reviewer: agreement cannot be faked with a look-alike spelling of one's own name
    assert ndb.execute("SELECT n_reviewers FROM resolved_labels WHERE candidate_id = ?", [cid]).fetchone()[0] == 1
    # and the overlap check sees the same reviewer: their own earlier decision does not take a slot
    assert store.insert_decision(ndb, decision_id=str(uuid.uuid4()), candidate_id=cid, reviewer="alice" + ZWJ,
                                 verdict="reject", overlap=1)


def test_bulk_accept_stores_the_normalised_reviewer_name(ndb):
    result = store.bulk_accept(ndb, "bulker" + ZWSP, store.QueueSpec(dataset="t"), 0.0, audit_size=lambda n: 1)
    assert result.accepted == 3
    assert ndb.execute("SELECT DISTINCT reviewer FROM decisions").fetchall() == [("bulker",)]
    assert ndb.execute("SELECT reviewer FROM bulk_actions").fetchall() == [("bulker",)]


@pytest.mark.parametrize("bad", [ZWSP, "x" * (MAX_NAME_CHARS + 1), "a\ud800"])
def test_an_unusable_reviewer_name_stores_nothing(ndb, bad):
    cid = ndb.execute("SELECT min(candidate_id) FROM candidates").fetchone()[0]
    with pytest.raises(ValueError):
        store.insert_decision(ndb, decision_id=str(uuid.uuid4()), candidate_id=cid, reviewer=bad, verdict="accept")
    with pytest.raises(ValueError):
        store.bulk_accept(ndb, bad, store.QueueSpec(dataset="t"), 0.0, audit_size=lambda n: 1)
    assert ndb.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0


def test_list_reviewers_gives_the_normal_form_of_names_stored_before(ndb):
    # rows written before names were normalised (raw SQL stands in for an older turnlens)
    for name in ("alice" + ZWSP, "alice", " bob ", ZWSP, "x" * (MAX_NAME_CHARS + 5)):
        ndb.execute("INSERT INTO decisions (decision_id, candidate_id, reviewer, verdict, role, app_version) "
                    "SELECT uuid(), min(candidate_id), ?, 'accept', 'review', 'old' FROM candidates", [name])
    assert store.list_reviewers(ndb) == ["alice", "bob"]
    assert check_new_name("carl", store.list_reviewers(ndb)) == "carl"  # nothing unusable breaks the check
