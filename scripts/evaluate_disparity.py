"""Entry point: `python scripts/evaluate_disparity.py [--help]` runs analysis.disparity.benchmark (where the
code lives) over a temporary database built with the app's own ingest and store."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from analysis.disparity.benchmark import main  # noqa: E402
from app.ingest import benchmark_database  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(database=benchmark_database))
