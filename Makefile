# The two set-up commands of the README: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))

.PHONY: install demo test lint docs

$(VENV)/.installed: pyproject.toml $(wildcard plugins/*/pyproject.toml)
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]" $(foreach dir,$(PLUGIN_DIRS),-e ./$(dir))
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
