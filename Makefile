# The two set-up commands of the README: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
# setuptools' editable install of a package whose folder sits beside its pyproject.toml (crmkit
# and every plugin) always warns "Please be careful with folders in your working directory";
# it is information with nothing to act on, and pip >= 25 shows build-backend warnings even
# with -q (five of them here). Only that message is filtered out: any other warning shows.
QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation"

.PHONY: install demo test lint docs

$(VENV)/.installed: pyproject.toml $(wildcard plugins/*/pyproject.toml)
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(QUIET_EDITABLE) $(PY) -m pip install -q -e ".[test]" $(foreach dir,$(PLUGIN_DIRS),-e ./$(dir))
	touch $@

install: $(VENV)/.installed

demo: install
	rm -f demo.db demo.db-wal demo.db-shm
	$(VENV)/bin/crmkit --database sqlite:///demo.db demo

test:
	bash scripts/test.sh

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

docs: install
	$(PY) -m crmkit.hookref > docs/hooks.md
