"""The held-out dialogues of a dataset: a stable hash split that training jobs never see.

The quick evaluation that `make run` and the app's *evaluate* jobs make is measured on the held-out fifth
of a dataset's own dialogues; training jobs train on the other four fifths only. (The full evaluations on
SLURP's evaluation split are separate, longer commands: scripts/evaluate_*.py.)

The split is a pure function of the dialogue id: sha256 of a fixed salt and the id, read as a number in
[0, 1), is held out when below ``share``. So it is the same on every machine, in every process and after
any import order; it keeps whole dialogues together (a dialogue's turns are not independent: a failed turn
is followed by its rephrase); and it is nested: a dialogue held out at share 0.1 is also held out at 0.2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

# Changing the salt reshuffles every dataset's split, and every stored quick evaluation would then have been
# measured on dialogues a new model may have trained on: keep it.
SALT = "turnlens/heldout-dialogues/v1"
HELDOUT_SHARE = 0.2


def heldout_position(dialogue_id: str) -> float:
    """The dialogue's place in [0, 1) (uniform over ids): the first 64 bits of sha256(SALT NUL id) / 2**64."""
    if not isinstance(dialogue_id, str):
        raise TypeError(f"dialogue_id must be a str, got {type(dialogue_id).__name__}")
    digest = hashlib.sha256(f"{SALT}\0{dialogue_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def _check_share(share: float) -> float:
    share = float(share)
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be in (0, 1), got {share}")
    return share


def is_heldout(dialogue_id: str, share: float = HELDOUT_SHARE) -> bool:
    """Whether the dialogue belongs to the held-out ``share`` (in (0, 1)) of its dataset. Stable across
    runs and machines; nested in ``share``."""
    return heldout_position(dialogue_id) < _check_share(share)


def split_turns(turns: Iterable[dict], share: float = HELDOUT_SHARE) -> tuple[list[dict], list[dict]]:
    """(train_turns, heldout_turns): the turns (dicts with a ``dialogue_id``, as ``store.list_turn_records``
    returns them) split by ``is_heldout`` of their dialogue, each list in the input order. Whole dialogues go
    one way. Either list may be empty (a tiny dataset may have no held-out dialogue)."""
    share = _check_share(share)
    memo: dict[str, bool] = {}
    train: list[dict] = []
    heldout: list[dict] = []
    for t in turns:
        did = t["dialogue_id"]
        if did not in memo:
            memo[did] = heldout_position(did) < share
        (heldout if memo[did] else train).append(t)
    return train, heldout
