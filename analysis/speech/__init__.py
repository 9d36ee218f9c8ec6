"""Offline speech for demo and evaluation data: espeak-ng voices per simulated speaker (voices), synthesis
(synthesis), pocketsphinx recognition with n-best lists and word posteriors (recognition), in-domain LMs from
training text only (lm), SLURP-based speech logs (slurp_log), log reading and writing (logio), and the speech
benchmark on SLURP's evaluation split (benchmark)."""
