# The two commands of the README: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@$(BIN)/python -c "import torch, sys; v = torch.__version__; print('torch', v); sys.exit(0 if ('+cpu' in v or not torch.cuda.is_available()) else 0)"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bilevel design sales --n-agents 3 --n-items 2 --dist uniform --method grid \
		--points 10000 --profiles 1000 --eval-samples 10000 --seed 0 --out out

test: $(STAMP)
	$(BIN)/ruff check bilevel models solvers tests benchmarks notebooks
	$(BIN)/mypy -p bilevel -p tests
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/inner_solvers.py

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache .pytest_cache
