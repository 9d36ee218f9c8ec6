"""Entry point: `python scripts/evaluate_mitigation.py [--help]` runs analysis.mitigation.benchmark (where the code
lives)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from analysis.mitigation.benchmark import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
