# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORE := $(VENV)/.core-installed
STAMP := $(VENV)/.installed
# uv installs the ~75 pinned packages in a few seconds where pip takes about 20; pip
# is the fallback where uv cannot be had. Both take constraints.txt as the lock.
INSTALL = if [ -x $(BIN)/uv ]; then $(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt $(1); \
	else $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt $(1); fi

.PHONY: demo test test-nonroot install clean sandbox-tools postgres browser bench

# A venv without pip (ensurepip alone takes seconds), uv put in it by the system's pip,
# then pip by uv, so that `.venv/bin/pip` is there for whoever adds an extra later.
# Without a usable pip outside (no `pip --python`, pip < 22.3) or without uv: ensurepip
# and pip, as before.
$(VENV)/bin/python:
	$(PYTHON) -m venv --without-pip $(VENV)
	@if $(PYTHON) -m pip --python $(BIN)/python install -qq --disable-pip-version-check -c constraints.txt uv \
	  && $(BIN)/uv pip install --quiet --python $(BIN)/python "pip>=24"; then :; else \
	  echo "uv could not be installed: installing with pip"; rm -f $(BIN)/uv $(BIN)/uvx; \
	  $(BIN)/python -m ensurepip --upgrade >/dev/null && \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"; fi

# The demo needs the core package only: no E2B, Modal, Postgres or server extras.
$(CORE): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(call INSTALL,-e .)
	touch $(CORE)

# The tests install the extras they test.
$(STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(call INSTALL,-e '.[test]')
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
