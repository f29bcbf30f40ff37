# SPDX-License-Identifier: GPL-3.0-or-later
# Bootstrap Makefile; the install/uninstall/demo/e2e targets are added by the packaging work.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv unit lint
venv: $(VENV)/.stamp
$(VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $@

unit: venv
	$(PY) -m pytest -q

lint: venv
	$(PY) -m ruff check bridge tests
