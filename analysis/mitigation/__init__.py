"""Mitigation of recognition disparities (issue 20 item 1): adapt the rescoring LM to a worst-served group.

ewc.py        lm_parameters, fisher_diagonal, ewc_penalty: elastic weight consolidation for the rescoring LM
adapt.py      AdaptConfig, adapt: plain or EWC fine-tuning on a group's n-best lists (LM + MWER loss)
groups.py     group_wer_table: per-group WER, mean / max / variance across groups, speaker-bootstrap intervals
benchmark.py  the study (scripts/evaluate_mitigation.py -> docs/results/mitigation.md)
"""
