# Two commands for a fresh machine: `make demo` and `make test`. Both set up .venv first (idempotent).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
QUESTION ?= Tom has 3 apples and buys 4 more. How many apples does he have now?

.PHONY: demo test test-fast test-latest lock lint setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/setup.sh
	bash scripts/setup.sh $(VENV) $(PY)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/deepprune ask "$(QUESTION)" --n 8

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q -ra --durations=15

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not e2e"

# The newest versions pyproject.toml allows (no lock), in a venv of their own: what a library user may get today.
test-latest:
	DEEPPRUNE_UNLOCKED=1 $(MAKE) test VENV=.venv-latest

# Refresh constraints.txt (the lock) from a fresh resolve; commit it once `make test` passes on it.
lock:
	bash scripts/lock.sh $(PY)

clean:
	rm -rf $(VENV) .venv-latest
