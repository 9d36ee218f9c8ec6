"""The coordination chunker's documented configuration: the network, its training, and the data generation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

# The slot types treated as list-able, derived from SLURP by ``examples.listable_types`` (at least
# LISTABLE_MIN_DISTINCT distinct values in the training pool, and either a noun as the last word of at least
# LISTABLE_MIN_NOUN_SHARE of their values, by SLURP's own POS tags, or a coordination of two of their values
# seen in the data). scripts/evaluate_coordination.py derives the set again and its --check compares; the
# table behind it is in docs/results/coordination.md. A dataset with other slot types passes its own.
LISTABLE_SLURP_TYPES = (
    "artist_name", "audiobook_name", "business_name", "business_type", "color_type", "currency_name", "date",
    "definition_word", "device_type", "event_name", "food_type", "game_name", "general_frequency",
    "house_place", "ingredient", "list_name", "media_type", "music_genre", "news_topic", "person",
    "personal_info", "place_name", "player_setting", "playlist_name", "podcast_descriptor", "podcast_name", "relation",
    "song_name", "time", "time_zone", "weather_descriptor",
)
LISTABLE_MIN_DISTINCT = 10  # one needs several distinct values to draw lists of 4+ different items
LISTABLE_MIN_NOUN_SHARE = 0.6  # names and noun phrases coordinate as items; verbs and adjectives mostly modify

# How the items of a generated list are joined, as people say them (recognisers emit no commas, so "a, b and c"
# is "a b and c"), with the share of lists spoken each way. Two items: "a and b", "a or b", ...
JOINERS = {"and": 0.45, "or": 0.2, "and_and": 0.1, "as_well_as": 0.15, "and_also": 0.1}
# Training: the share of generated examples with 1 (the utterance as it is: all O), 2, 3, 4 and 5 items.
K_WEIGHTS = (0.2, 0.35, 0.25, 0.12, 0.08)
# Evaluation builds one example per item count for every carrier utterance: 1, 2, 3, 4 and 5 (4+ = 4 and 5).
TEST_KS = (1, 2, 3, 4, 5)
# Slot types held out of training for the seen/unseen comparison: the quarter of list-able types whose
# sha256("coordination-unseen:" + type) is smallest (a rule fixed before any result was seen).
UNSEEN_SHARE = 0.25


@dataclass
class CoordinationConfig:
    """Hyper-parameters (defaults set without looking at the evaluation split; adversary_weight was chosen among
    0.1, 0.3 and 1.0 on validation lists from the training pool, the rest without a search).

    word_vectors: "minilm" (each word is the mean of its word pieces' input embeddings in the bundled
    all-MiniLM-L6-v2, projected on their top word_dim principal components; frozen, plus a learned per-word
    correction for the training words) or "trained" (plain embeddings learned here from the training data).
    word_dropout: the share of training words whose learned correction is dropped in a step (the unknown-word
    case, so words of unseen slot types are not strangers). char_dim / char_filters: character embeddings and a
    width-3 convolution max-pooled per word (max_word_chars characters kept). hidden: the BiLSTM's size per
    direction. use_chars / use_crf: the ablations (no character embeddings; a softmax per word instead of the
    CRF). adversary_weight: the slot-type adversary's loss weight (0: no adversary, the ablation); its gradient
    reaches the encoder reversed and scaled by grl_lambda (ramped up from 0 over training, as in DANN).
    Training: Adam at lr, batch_size examples, epochs; variants examples generated per carrier utterance with
    1-5 items drawn by k_weights. slot_types: the list-able types; held_out_types: types kept out of training
    altogether (for the seen/unseen comparison). seed: data generation, initialisation and batch order.
    """

    word_vectors: str = "minilm"
    word_dim: int = 64
    word_dropout: float = 0.1
    char_dim: int = 16
    char_filters: int = 32
    max_word_chars: int = 16
    hidden: int = 64
    dropout: float = 0.25
    use_chars: bool = True
    use_crf: bool = True
    adversary_weight: float = 0.1  # chosen on validation lists (docs/results/coordination.md)
    grl_lambda: float = 1.0
    lr: float = 2e-3
    batch_size: int = 32
    epochs: int = 6
    variants: int = 4
    k_weights: tuple[float, ...] = K_WEIGHTS
    slot_types: tuple[str, ...] = LISTABLE_SLURP_TYPES
    held_out_types: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        self.k_weights = tuple(float(w) for w in self.k_weights)
        self.slot_types = tuple(self.slot_types)
        self.held_out_types = tuple(self.held_out_types)
        if self.word_vectors not in ("minilm", "trained"):
            raise ValueError(f"word_vectors must be 'minilm' or 'trained', got {self.word_vectors!r}")
        if len(self.k_weights) != 5 or any(w < 0 for w in self.k_weights) or not sum(self.k_weights) > 0:
            raise ValueError("k_weights: five non-negative shares (1 to 5 items), not all zero")
        if self.epochs < 1 or self.variants < 1 or self.batch_size < 1:
            raise ValueError("epochs, variants and batch_size must be >= 1")
        if not 0.0 <= self.word_dropout < 1.0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError("word_dropout and dropout must be in [0, 1)")
        if self.adversary_weight < 0 or self.grl_lambda < 0:
            raise ValueError("adversary_weight and grl_lambda must be >= 0")
        unknown = set(self.held_out_types) - set(self.slot_types)
        if unknown:
            raise ValueError(f"held_out_types must be among slot_types; not: {', '.join(sorted(unknown))}")
        if not set(self.slot_types) - set(self.held_out_types):
            raise ValueError("no slot type is left to train on")

    @property
    def trained_types(self) -> tuple[str, ...]:
        return tuple(t for t in self.slot_types if t not in self.held_out_types)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> CoordinationConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known})
