# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORE := $(VENV)/.core-installed
STAMP := $(VENV)/.installed

.PHONY: demo test test-nonroot install clean sandbox-tools postgres browser bench

# uv installs when it can be had (seconds instead of pip's ~20), else pip: tools/venv.sh.
$(VENV)/bin/python:
	PYTHON=$(PYTHON) sh tools/venv.sh $(VENV)

# The demo needs the core package only: no E2B, Modal, Postgres or server extras.
$(CORE): pyproject.toml constraints.txt | $(VENV)/bin/python
	sh tools/venv.sh $(VENV) -e .
	touch $(CORE)

# The tests install the extras they test. Compiled to bytecode at install, as pip does:
# the suite starts dozens of interpreters that import LangChain, and with
# PYTHONDONTWRITEBYTECODE set each would compile it again. (The demo, one interpreter,
# is quicker without: it compiles only what it imports.)
$(STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	UV_COMPILE_BYTECODE=1 sh tools/venv.sh $(VENV) -e '.[test]'
	touch $(CORE) $(STAMP)

install: $(STAMP)

demo: $(CORE) sandbox-tools
	$(BIN)/devlooper demo --output output/demo --force

# The benchmarks of BENCHMARKS.md: ratios and medians, with the machine, the command and the date.
bench: $(STAMP) sandbox-tools
	$(BIN)/python benchmarks/run_all.py --output BENCHMARKS.md

# bubblewrap isolates the local sandbox and slirp4netns gives its build steps a network
# of their own; CI installs both (as root, with apt) so that the containment tests run
# for real. Elsewhere they are skipped with the reason.
sandbox-tools:
	@if ! command -v bwrap >/dev/null 2>&1 || ! command -v slirp4netns >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap slirp4netns; \
	  else \
	    echo "bubblewrap or slirp4netns is not installed: sandbox containment tests will be skipped (apt-get install bubblewrap slirp4netns)"; \
	  fi; \
	fi

# As root, the containment suite also runs as an ordinary user (bubblewrap unprivileged).
test: $(STAMP) sandbox-tools postgres browser
	$(BIN)/python -m pytest
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory test-nonroot; fi

test-nonroot: sandbox-tools
	bash .ci/test-nonroot

# The Postgres checkpoint tests start their own server from Debian's postgresql
# package. Installed here when missing and we are root with apt; elsewhere those
# tests skip and say why.
postgres:
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else echo "postgresql is not installed: the Postgres tests will be skipped"; fi

# The report page is rendered in headless Chromium (Debian's chromium package): installed
# here when missing and we are root with apt; elsewhere that test skips and says why.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium is not installed: the report page test will be skipped"; fi

clean:
	rm -rf $(VENV) output .pytest_cache
