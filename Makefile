# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test services-up services-down bench clean

$(BIN)/skylane: pyproject.toml
	tools/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: $(BIN)/skylane
	$(BIN)/skylane demo

test: $(BIN)/skylane
	tools/system-deps.sh --test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

services-up: $(BIN)/skylane
	$(BIN)/skylane services up

services-down: $(BIN)/skylane
	$(BIN)/skylane services down

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
