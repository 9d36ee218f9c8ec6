"""Model families and the jobs that train, score and evaluate them (see app/jobs/registry.py)."""
