# medserve: two commands for a new user — `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
REPOSITORY := model_repository
PYTEST_ARGS ?=

.PHONY: help install install-system-tools model-repository run test bench fuzz clean

help:
	@echo "make run    - set up, start Triton + gateway on REPOSITORY as it is (default model_repository: demo zoo built if missing)"
	@echo "make test   - set up and run the test suite (unit + end-to-end against a real tritonserver)"
	@echo "make bench  - benchmarks: preprocessing, medserve vs the naive baseline, intake before/after, DICOM receive rate (docs/benchmarks.md)"
	@echo "make fuzz   - 10,000 fuzz cases against a fresh Triton + gateway; writes docs/reliability.md"

# The virtual environment, reinstalled whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] < (3, 14) else "medserve needs Python 3.10-3.13 (the tritonserver stub must match it); set PYTHON=")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)

# Debian tools the tests use as independent checkers and peers: dciodvfy (dicom3tools) validates the
# DICOM SEG we produce; prometheus/promtool evaluate the dashboards and alerts; dcmtk's storescu /
# echoscu talk DIMSE to the receiver; PostgreSQL (pg_ctl is off PATH) backs the job store tests.
# Installed when missing.
# Orthanc (the hospital PACS of tests/e2e/test_orthanc_pacs.py) is named by its path: /usr/sbin is not on a
# normal user's PATH, and `command -v /usr/sbin/Orthanc` answers for an absolute path.
# Orthanc's DICOMweb plugin is the STOW-RS destination of tests/e2e/test_results_to_pacs.py.
# chromium is the real browser the page's test (tests/e2e/test_ui.py) drives headless through Playwright.
ORTHANC_DICOMWEB := /usr/share/orthanc/plugins/libOrthancDicomWeb.so
SYSTEM_TOOLS := dciodvfy:dicom3tools promtool:prometheus storescu:dcmtk /usr/sbin/Orthanc:orthanc chromium:chromium
install-system-tools:
	@missing=""; for pair in $(SYSTEM_TOOLS); do command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	test -e $(ORTHANC_DICOMWEB) || missing="$$missing orthanc-dicomweb"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (apt)"; \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

model-repository: $(STAMP)
	$(BIN)/python -m devtools demo-repository --output $(REPOSITORY)

# `make run` serves $(REPOSITORY) as it is; `devtools run` itself exports the demo zoo where missing,
# but only into the default model_repository (or with RUN_ARGS=--demo-models):
# `make run REPOSITORY=my_repo` starts on my_repo at once and writes nothing into it.
RUN_ARGS ?=
run: $(STAMP)
	$(BIN)/python -m devtools run --repository $(REPOSITORY) $(RUN_ARGS)

test: install-system-tools model-repository
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Preprocessing, medserve vs the naive baseline, the hardened intake against the gateway
# before it, and the DICOM node's receive rate against pynetdicom's and dcmtk's storescp, each side
# by side in one run; the node's series-to-result time by stage (docs/benchmarks.md). ~20 min.
bench: install-system-tools model-repository
	$(BIN)/python -m benchmarks.preprocessing_bench
	$(BIN)/python -m devtools bench
	$(BIN)/python -m benchmarks.realsize
	$(BIN)/python -m benchmarks.intake_bench
	$(BIN)/python -m benchmarks.dimse_bench
	$(BIN)/python -m benchmarks.gateway_cpu
	$(BIN)/python -m benchmarks.scaling

# The long reliability campaign (fuzz/): starts its own tritonserver and gateway. ~15 min on 2 cores.
fuzz: model-repository
	$(BIN)/python -m fuzz --cases 10000 --report docs/reliability.md

clean:
	rm -rf build $(REPOSITORY)/*/ .pytest_cache
