# fleetlog — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Debian packages the tests drive for real: rsyslog (the SIEM peer), systemd-journal-remote
# (builds journal files), poppler-utils (pdftotext reads exported PDFs), systemd (systemd-analyze),
# gcc and libssl-dev (build common/_chain_native.c, the hash chain's C step, and
# agent/_parse_native.c, the agent's read+parse, agent/sources/_syslog_native.c, the syslog
# receiver's framing and parsing, and collector/store/_blocks_native.c, the block codec's loops;
# see setup.py),
# prometheus (promtool checks and unit-tests deploy/prometheus; the server evaluates the dashboard),
# chromium (the web console's browser tests, driven by Playwright with Debian's browser),
# postgresql (the tests start their own server in a temporary directory; tests/pg.py).
SYSTEM_PACKAGES := rsyslog rsyslog-gnutls bsdutils systemd-journal-remote poppler-utils systemd gcc libssl-dev prometheus prometheus-alertmanager chromium postgresql

.PHONY: install proto system-deps test test-fast docs-screenshots run bench fuzz lint clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py common/_chain_native.c agent/_parse_native.c agent/sources/_syslog_native.c \
          agent/_civil_days.h collector/store/_blocks_native.c \
          $(wildcard proto/fleetlog/v1/*.proto)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/python proto/generate.py
	touch $(STAMP)

proto: install
	$(BIN)/python proto/generate.py

# Installs what the tests need when it is missing (apt-get; needs root, as in CI).
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	fi

# system-deps first: the install builds the C step against OpenSSL's headers.
# The suite cannot hang: each test has a 180 s timeout (pyproject) and a 300 s hard bound
# (tests/conftest.py), and the whole run a wall-clock limit, so `make test` ends, pass or fail.
# About 12 minutes here; the limit leaves room for a machine 2.5 times slower (CI allows 90 minutes),
# so it stops a hung run, never a healthy one.
TEST_TIME_LIMIT ?= 40m
test: system-deps install
	timeout --kill-after=30s $(TEST_TIME_LIMIT) $(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q tests/unit

# The console's screenshots in docs/: the browser tests write them to var/screenshots/ (git-ignored)
# on every run, so a test run leaves the checkout clean; this target refreshes the committed copies.
docs-screenshots: system-deps install
	$(BIN)/python -m pytest -q tests/integration/test_web_browser.py tests/integration/test_settings_console.py \
	  tests/integration/test_settings_alerts.py
	cp var/screenshots/console-*.png var/screenshots/settings-*.png docs/

run: install
	$(BIN)/python examples/run_local.py

bench: system-deps install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Coverage-guided fuzzing (atheris) of every parser that reads outside data, FUZZ_SECONDS per
# target (21 targets: about 5 minutes in all). Findings: var/fuzz/; see tests/fuzz/run.py.
FUZZ_SECONDS ?= 12
fuzz: install
	$(BIN)/python -m tests.fuzz.run --seconds $(FUZZ_SECONDS)

# mypy reads the rooms under their import name through links var/mypy/fleetlog/<room> -> <room>/
# (pyproject.toml [tool.mypy]): the editable install's import hook is invisible to it. The rooms
# are the ones setup.py maps.
ROOMS := $(shell sed -n 's/^ROOMS = (\(.*\))/\1/p' setup.py | tr -d '",')
lint: install
	$(BIN)/ruff check agent collector common cli tests bench examples proto
	rm -rf var/mypy/fleetlog && mkdir -p var/mypy/fleetlog
	for room in $(ROOMS); do ln -s ../../../$$room var/mypy/fleetlog/$$room; done
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var build *.egg-info
