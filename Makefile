# `make demo` and `make test` install what is missing, then run. Both are idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := python3-bpfcc linux-headers-amd64 bpftool bpftrace rustfilt binutils dpkg-dev
SUDO_HINT = sudo make $@

.PHONY: demo test lint bench bootstrap system-packages venv clean realcrate

demo: bootstrap
	$(PY) -m pytest --uprobe -p no:cacheprovider -v examples/

test: bootstrap realcrate
	$(PY) -m pytest --uprobe tests examples -q -rs

# fd, a real crate built offline from Debian's fd-find source package against its
# librust-*-dev crates (the script installs them with apt-get build-dep) for tests/realcrate.
# Built once (2 to 5 minutes on 2 cores); later runs find it current in about a second.
realcrate: system-packages
	tests/realcrate/build-fd.sh tests/realcrate/build

lint: venv
	$(VENV)/bin/ruff check pytest_uprobe tests examples benchmarks
	$(VENV)/bin/mypy

bench: bootstrap
	$(PY) benchmarks/run.py

bootstrap: system-packages venv

system-packages:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "pytest-uprobe needs Debian packages: $$missing"; \
	    echo "Tracing needs root too. Run instead:  $(SUDO_HINT)"; exit 1; \
	  fi; \
	  echo "Installing $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@if [ "$$(id -u)" != 0 ]; then echo "Tracing needs root (or CAP_BPF and CAP_PERFMON). Run instead:  $(SUDO_HINT)"; exit 1; fi
	@command -v cargo >/dev/null || { echo "cargo is missing: install Rust (rustup or apt-get install cargo)"; exit 1; }

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) example_crates/*/target benchmarks/*/target tests/realcrate/build
