# `make demo` and `make test` install what is missing, then run. Both are idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := python3-bpfcc linux-headers-amd64 bpftool bpftrace rustfilt binutils llvm chromium \
	systemtap-sdt-dev gcc dpkg-dev librust-tokio-dev
SUDO_HINT = sudo make $@
# An offline trace-event viewer from npm: tests/test_timeline.py opens timelines in it.
SPEEDSCOPE := .tools/speedscope/package/dist/release/index.html

.PHONY: demo test lint docs bench bootstrap system-packages venv clean differential realcrate

demo: bootstrap
	$(PY) -m pytest --uprobe -p no:cacheprovider -v examples/

test: bootstrap docs realcrate $(SPEEDSCOPE)
	$(PY) -m pytest --uprobe tests examples -q -rs

# The documentation site (docs/ -> site/); --strict turns every warning into an error.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

# A longer differential campaign (tests/differential): N generated functions per crate, built
# in dev, release and release with debug = 1; SEED one or more seeds (default: 3 random ones);
# ENGINE the engines, each tracing the same runs (default both, their answers compared).
N ?= 100
SEED ?=
ENGINE ?= bpf inprocess
differential: bootstrap
	$(PY) -m tests.differential.harness --functions $(N) $(if $(SEED),$(foreach s,$(SEED),--seed $(s)),--seeds 3) \
	  $(foreach e,$(ENGINE),--engine $(e))

# fd, a real crate built offline from Debian's fd-find source package against its
# librust-*-dev crates (the script installs them) for tests/realcrate.
# Built once (2 to 5 minutes on 2 cores); later runs find it current in about a second.
realcrate: system-packages
	tests/realcrate/build-fd.sh tests/realcrate/build

lint: venv
	$(VENV)/bin/ruff check pytest_uprobe tests examples benchmarks
	$(VENV)/bin/ruff format --check pytest_uprobe tests examples benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

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

$(SPEEDSCOPE):
	@if command -v npm >/dev/null; then \
	  mkdir -p .tools/speedscope && cd .tools/speedscope && \
	  { npm pack -q speedscope@1.25.0 >/dev/null && tar xzf speedscope-1.25.0.tgz; } || \
	  echo "could not fetch speedscope from npm: its timeline test will be skipped"; \
	else echo "npm is missing: the speedscope timeline test will be skipped"; fi

clean:
	rm -rf $(VENV) site .tools example_crates/*/target benchmarks/*/target tests/differential/target \
	  tests/realcrate/build
