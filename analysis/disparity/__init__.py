"""Disparity: per-speaker WER, learned regions, speaker cohorts and the page's report."""
