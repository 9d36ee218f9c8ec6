"""Rare-word rescoring (issue 19): a second-pass LSTM LM trained with intent and slot heads rescores n-best lists.

config.py     RescoringConfig: the network, pretraining and multitask fine-tuning, the task weighting
text.py       words(): the one tokenisation; NLU examples with BIO tags; training text from SLURP or turns
weighting.py  task-weight schedules: fixed, linear ramp, randomized weighted majority
model.py      RescoringModel: fit / pretrain / finetune, log_prob (prefix-trie scoring), checkpoints
rescore.py    NBest, nbest_from_turn, lm_scores, choose, tune (lam, beta), Rescorer
transcripts.py  the workbench's transcript candidates: value, correction, WER against reviewed transcripts
heldout.py    the quick held-out evaluation of `turnlens evaluate rescoring`
"""
