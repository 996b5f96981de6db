# The two set-up commands: `make run` serves the registry, `make test` runs every test.
# Both create and use .venv at the repository root.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LISTEN ?= 127.0.0.1:5000
DATA ?= ./data
PYTEST_ARGS ?=

.PHONY: run test venv system-deps bench bench-quick clean

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || scripts/install-system-deps --python-only
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# compat: the editable install is one path entry (a .pth naming the checkout). The default
	# mode installs an import-hook finder that every interpreter start loads: ~11 ms of the
	# 25 ms start of each `dockyard` command (bench/results/PROFILE.md, sections 9 and 10).
	$(BIN)/pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	@touch $@

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/dockyard-registry serve --listen $(LISTEN) --data-dir $(DATA)

system-deps:
	scripts/install-system-deps

test: system-deps $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) build *.egg-info
