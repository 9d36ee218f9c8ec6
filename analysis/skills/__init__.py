"""Skill routing: the router with pseudo-labels and negative feedback, and its evaluation."""
