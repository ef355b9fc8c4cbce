# The two commands the README presents: `make demo` and `make test`.
# Both set the machine up first (Debian packages as root, .venv, editable install of
# s3vault with the extra `demo`, or `test` for the tests): see scripts/bootstrap.sh.
# Everything runs without prompts.

VENV ?= .venv
PYTEST_ARGS ?=
export DEBIAN_FRONTEND := noninteractive

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

.PHONY: demo test lint bench bootstrap-runtime bootstrap-test

bootstrap-runtime:
	@VENV=$(VENV) bash scripts/bootstrap.sh runtime

bootstrap-test:
	@VENV=$(VENV) bash scripts/bootstrap.sh test

## demo: run s3vault end to end on an embedded local S3 endpoint; on a display
## (DISPLAY or WAYLAND_DISPLAY set) it then opens the desktop app on it (demo --gui)
demo: bootstrap-runtime
	$(VENV)/bin/s3vault demo $$([[ -n "$${DISPLAY:-}$${WAYLAND_DISPLAY:-}" ]] && echo --gui || true)

## test: ruff, mypy, then the whole test suite on real local services
## (PYTEST_ARGS=... to narrow, e.g. PYTEST_ARGS="-m 'not services'" for the pure tests)
test: bootstrap-test
	$(VENV)/bin/ruff check s3vault tests
	$(VENV)/bin/mypy s3vault
	@# pytest exits 5 when it collected no test: that is a failure here, not a pass.
	@echo "$(VENV)/bin/pytest $(PYTEST_ARGS)"
	@rc=0; $(VENV)/bin/pytest $(PYTEST_ARGS) || rc=$$?; \
	if [[ $$rc -eq 5 ]]; then echo "make test: pytest ran no test" >&2; exit 1; fi; \
	exit $$rc

## lint: ruff and mypy
lint: bootstrap-test
	$(VENV)/bin/ruff check s3vault tests
	$(VENV)/bin/mypy s3vault

## bench: the benchmarks (bench/run_all.py)
bench: bootstrap-test
	$(VENV)/bin/python bench/run_all.py
