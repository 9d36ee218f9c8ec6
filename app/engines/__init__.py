"""Engines that score outside this process: a model family's batch scorer (app/jobs/registry.BatchScoring) run on
a cluster, reading the log's Parquet parts and writing candidate Parquet parts for `turnlens candidates import`."""
