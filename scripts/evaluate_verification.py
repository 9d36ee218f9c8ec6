"""Entry point: `python scripts/evaluate_verification.py [--help]` runs analysis.verification.benchmark (where the
code lives)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from analysis.verification.benchmark import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
