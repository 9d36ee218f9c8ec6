"""Speaker verification with adversarial reweighting (issue 20 item 2): a projection of frozen voice embeddings
trained on same/different-speaker pairs, plainly or against a cluster adversary, and its EER per group.

eer.py        EER (exact ROC crossing), trials (all_trials), per-group EER, gaps, speaker-bootstrap replicates
model.py      VerifierConfig, Verifier (embed, score, save_pretrained / from_pretrained), train_verifier, raw_cosine
arw.py        ClusterAdversary (one logit per k-means cluster, weights with mean 1), weighted_pair_loss
evaluate.py   evaluate_verifier (EER overall and per group with intervals, gaps), leak_check
data.py       the study's simulated speakers, their split, synthesis and per-turn embeddings (cached)
benchmark.py  the study: raw cosine, plain and ARW verifiers over seeds -> docs/results/verification.{md,json}
"""

from analysis.verification.eer import Trials, all_trials, eer
from analysis.verification.evaluate import evaluate_verifier, leak_check
from analysis.verification.model import METHODS, Verifier, VerifierConfig, raw_cosine, train_verifier

__all__ = ["METHODS", "Trials", "Verifier", "VerifierConfig", "all_trials", "eer", "evaluate_verifier",
           "leak_check", "raw_cosine", "train_verifier"]
