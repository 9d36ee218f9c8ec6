"""Entry point: `python scripts/build_sample_data.py [--help]` runs analysis.sample_data (where the code lives)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from analysis.sample_data import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
