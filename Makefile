# make test: set everything up on a fresh Debian 12 machine (as root) and run the whole suite.
# make venv: only the system packages and the virtual environment (.venv).
# make demo: the same set-up, then the whole bounce loop on a throwaway Postfix (tests/demo.py);
# make demo MTA=sendmail: on Sendmail 8.17 instead (the bounce factory's, installed first).
# Both are idempotent: system packages already present and an up-to-date .venv are skipped.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# The pipe transport runs as an unprivileged user, who must be able to execute the
# interpreter: build the venv from the system Python, never from one under a 0700 home.
PYTHON := /usr/bin/python3
VENV := .venv
STAMP := $(VENV)/.installed
# What bouncefilter and the demo need; then what only the tests need (a browser for the
# overview page, strace and systemd-analyze for the units' system calls, CPython's email
# test messages, OpenDKIM's miltertest to drive the milter): a mail server that only runs
# the demo gets none of those.
APT_PACKAGES := postfix libmilter-dev python3-venv python3-dev gcc sqlite3
TEST_APT_PACKAGES := chromium chromium-driver strace systemd libpython3.11-testsuite miltertest
PYTEST_ARGS ?=
MTA ?= postfix

.PHONY: test venv demo system test-system factory clean

test: venv test-system factory
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

venv: $(STAMP)

demo: venv $(if $(filter sendmail,$(MTA)),factory)
	MTA=$(MTA) $(VENV)/bin/python tests/demo.py

# The package (editable) with its test extra; redone when the packaging changes.
$(STAMP): setup.cfg pyproject.toml | system
	@if [ -f $(VENV)/pyvenv.cfg ] && ! grep -qx 'home = $(patsubst %/,%,$(dir $(PYTHON)))' $(VENV)/pyvenv.cfg; then \
	    echo "$(VENV) was not built from $(PYTHON): rebuilding it"; rm -rf $(VENV); fi
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --use-pep517 --editable '.[test]'
	chmod -R a+rX $(VENV)
	touch $@

# The bounce factory's MTAs (Exim, Sendmail, OpenSMTPD, dma) beside the system's Postfix:
# their .deb files unpacked into a private root, never installed (tests/factory/install.sh).
factory: system
	tests/factory/install.sh

# apt-get only for what is missing. Postfix is installed with "No configuration": it writes
# no /etc/postfix/main.cf and starts nothing; the tests run their own instances.
system: PACKAGES = $(APT_PACKAGES)
test-system: PACKAGES = $(APT_PACKAGES) $(TEST_APT_PACKAGES)
system test-system:
	@missing=""; \
	for package in $(PACKAGES); do \
	    [ "$$(dpkg-query -W -f='$${db:Status-Status}' $$package 2>/dev/null)" = installed ] || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" != 0 ]; then echo "make: run as root to install:$$missing" >&2; exit 1; fi; \
	    echo "apt-get install$$missing"; \
	    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq; \
	    apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
