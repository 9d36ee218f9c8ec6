"""The README's screenshots, taken from the app on the `make run` database in Debian's headless chromium.

    python scripts/screenshots.py [--db data/turnlens.duckdb] [--out docs/screenshots]

Starts the app on a free 127.0.0.1 port (as the browser tests do), opens each page below as a signed-in
reviewer, waits for its run to finish and for its charts to draw, and writes one PNG per page. Nothing leaves
the machine: any outside request is refused, as in the browser tests. Rerun it after a page changes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import CHROMIUM_ARGS  # noqa: E402
from tests.e2e.server import AppServer, sign_in, wait_idle  # noqa: E402


@dataclass(frozen=True)
class Shot:
    name: str  # the PNG's name and what the README calls it
    path: str  # page and query parameters
    wait_for: str | None = None  # a selector that must be visible before the shot (charts draw after the run)
    settle_ms: int = 1500  # charts and the UMAP worker draw after the script's run ends
    height: int = 1000


SHOTS = [
    Shot("overview", "/?dataset=sample", "[data-testid='stPlotlyChart']"),
    Shot("review", "/review?dataset=sample", settle_ms=3000),
    Shot("review-audio", "/review?dataset=speech-demo", "audio", height=1100),
    Shot("dialogues", "/dialogues?dataset=speech-demo", "audio", height=1300),
    Shot("rewrites", "/rewrites?dataset=rewrites-demo", "[data-testid='stPlotlyChart']", height=1200),
    Shot("disparity", "/disparity?dataset=disparity-demo", "[data-testid='stPlotlyChart']", settle_ms=8000,
         height=1300),
    Shot("models", "/models?dataset=sample", "[data-testid='stDataFrame']"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=ROOT / "data" / "turnlens.duckdb")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--only", nargs="*", help="names of the shots to take (default: all)")
    args = parser.parse_args(argv)
    exe = shutil.which("chromium")
    if exe is None:
        print("screenshots: Debian chromium is missing (bash scripts/ensure_chromium.sh)", file=sys.stderr)
        return 2
    if not args.db.exists():
        print(f"screenshots: {args.db}: no such database (make sample-db builds it)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    shots = [s for s in SHOTS if not args.only or s.name in args.only]
    with AppServer(args.db) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        for shot in shots:
            context = browser.new_context(viewport={"width": 1400, "height": shot.height})
            context.route("**/*", lambda route: route.continue_()
                          if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:"))
                          else route.abort())
            page = context.new_page()
            sign_in(page, f"{server.url}{shot.path}", "screenshots")
            wait_idle(page, timeout=180_000)
            if shot.wait_for:
                page.wait_for_selector(shot.wait_for, state="attached", timeout=180_000)
            page.wait_for_timeout(shot.settle_ms)
            wait_idle(page, timeout=180_000)
            target = args.out / f"{shot.name}.png"
            page.screenshot(path=str(target))
            print(f"{target.relative_to(ROOT)}  {target.stat().st_size / 1024:.0f} KB")
            context.close()
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
