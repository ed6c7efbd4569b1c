# Two commands on a fresh machine (only Python 3.11 and pip needed):
#   make quickstart   venv, install, train on the bundled sample, export, predict
#   make test         venv, install with test tools, run every test (two workers)
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
SAMPLE := apps/sentiment/sample

.PHONY: quickstart test test-quick bench lint clean

$(BIN)/apps: setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@

quickstart: $(BIN)/apps
	$(BIN)/apps sentiment train --data $(SAMPLE)/train.tsv --valid $(SAMPLE)/valid.tsv \
		--output runs/quickstart --overwrite --epochs 8 --vocab-size 300 --units 32 --embedding-dim 32
	$(BIN)/apps sentiment export runs/quickstart
	$(BIN)/apps sentiment predict saved_models/sentiment "What a wonderful film, I loved every minute." \
		"Dull and far too long."

# Every test, slow ones included, on two pytest-xdist workers (CI runs this).
test: $(BIN)/apps
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=25

# Without the slowest end-to-end runs, while working on something.
test-quick: $(BIN)/apps
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=25 -m "not slow"

$(VENV)/.bench-installed: $(BIN)/apps
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	@touch $@

# The benchmarks of docs/benchmarks.md (hours on two cores; needs ../shared/data).
bench: $(VENV)/.bench-installed
	PYTHONPATH=. $(BIN)/python bench/sentiment_mr.py --output-md docs/bench_sections/sentiment_accuracy.md
	PYTHONPATH=. $(BIN)/python bench/sentiment_speed.py --repeats 3 --output-md docs/bench_sections/sentiment_speed.md
	PYTHONPATH=. $(BIN)/python bench/encoder_step.py
	PYTHONPATH=. $(BIN)/python bench/matmul_precision.py
	PYTHONPATH=. $(BIN)/python bench/serve_bench.py --output-md docs/bench_sections/serve.md
	PYTHONPATH=. $(BIN)/python bench/lm_tinyshakespeare.py --output-md docs/bench_sections/lm.md
	PYTHONPATH=. $(BIN)/python bench/translate_multi30k.py --sort-by-length --output-md docs/bench_sections/translation.md
	PYTHONPATH=. $(BIN)/python bench/translation_step.py
	PYTHONPATH=. $(BIN)/python bench/scaling.py --output-md docs/bench_sections/scaling.md
	PYTHONPATH=. $(BIN)/python bench/speech_fsdd.py --output-md docs/bench_sections/speech.md

lint: $(BIN)/apps
	$(BIN)/ruff check apps pipelines tests bench

clean:
	rm -rf $(VENV) runs *.egg-info
