"""Failure points: the failure-point model, its evaluation and reports."""
