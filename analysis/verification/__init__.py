"""Speaker verification with adversarial reweighting (issue 20 item 2): a projection of frozen voice embeddings
trained on same/different-speaker pairs, plainly or against a cluster adversary, and its EER per group.

eer.py        EER (exact ROC crossing), trials, per-group EER, gaps, speaker-bootstrap replicates
"""
