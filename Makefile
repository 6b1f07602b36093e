# Two commands set up a fresh machine: `make serve` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test test-fast lint bench bench-matting bench-harmonize bench-diffusion loadtest proto clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/replate models pull
	$(BIN)/replate serve

test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/replate models pull
	$(BIN)/pytest

# The playground's browser test drives Debian's chromium (Playwright with executable_path, no browser download).
chromium:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)

test-fast: $(STAMP)
	$(BIN)/pytest -m 'not slow'

bench-matting: $(STAMP)
	$(BIN)/replate models pull
	$(BIN)/replate bench matting

bench-harmonize: $(STAMP)
	$(BIN)/replate models pull
	$(BIN)/replate bench harmonize

bench-diffusion: $(STAMP)
	$(BIN)/python -m benchmarks.bench_diffusion

# A bounded step load (USERS, DURATION seconds) against an embedded stack on 127.0.0.1; report in .replate/loadtest.
loadtest: $(STAMP)
	$(BIN)/replate models pull
	$(BIN)/python -m loadtests.run --step --users $(or $(USERS),8) --spawn-rate 1 --step-seconds 15 \
		--duration $(or $(DURATION),120) --out .replate/loadtest

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench_pixels
	$(BIN)/python -m benchmarks.bench_request_path
	$(BIN)/python -m benchmarks.bench_gateway
	$(BIN)/python -m benchmarks.bench_ledger

proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. gateway/proto/replate/v1/replate.proto

clean:
	rm -rf $(VENV) .replate .pytest_cache
