# Luban Path. `make run` and `make test` set everything up on a fresh machine with Python 3.11+.
# PYTHON: the first Python 3.11 or newer on PATH (3.11 first: CI's version); `make PYTHON=...` overrides.
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3.14 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { command -v $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PB_DIR := recommender/api/pb
PB := $(PB_DIR)/luban/path/v1/learning_path_pb2.py
PROTO := proto/luban/path/v1/learning_path.proto
PYTEST_ARGS ?=

.PHONY: run test lint proto messages docs bench bench-quick profile clean serve demo pybkt h2load browser dashboard

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || test -n "$(PYTHON)" || { echo "make: no Python 3.11 or newer on PATH; install one, or name it: make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	@echo "make: installing Luban Path and its development tools into $(VENV) (about a minute on a fresh machine)"
	$(BIN)/python -m pip install --progress-bar on -e '.[dev,dask]'
	touch $(INSTALLED)

$(PB): $(PROTO) $(INSTALLED)
	rm -rf $(PB_DIR)/luban
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m grpc_tools.protoc -I$(PB_DIR)=proto \
		--python_out=. --grpc_python_out=. --mypy_out=. --mypy_grpc_out=. $(PROTO)
	for d in $(PB_DIR)/luban $(PB_DIR)/luban/path $(PB_DIR)/luban/path/v1; do touch $$d/__init__.py; done

proto: $(PB)

# Reason texts: extract the English messages from reasons.py into the template, then merge it into
# every locale's catalog (new messages arrive untranslated; the i18n test fails until they are
# translated). The .po files are compiled in memory at first use: no .mo is built or committed.
LOCALES_DIR := recommender/planner/locales
DASHBOARD_DIR := recommender/dashboard
messages: $(INSTALLED)
	$(BIN)/pybabel extract --no-default-keywords -k _text:1c,2 -k _plural:1c,2,3 --no-location --width 120 \
		--project "Luban Path" --copyright-holder "Luban Path" --msgid-bugs-address "" \
		-o $(LOCALES_DIR)/reasons.pot recommender/planner/reasons.py
	$(BIN)/pybabel update --no-fuzzy-matching --width 120 -D reasons -i $(LOCALES_DIR)/reasons.pot -d $(LOCALES_DIR)
	$(BIN)/pybabel extract -F $(DASHBOARD_DIR)/babel.cfg --no-location --width 120 \
		--project "Luban Path" --copyright-holder "Luban Path" --msgid-bugs-address "" \
		-o $(DASHBOARD_DIR)/locales/dashboard.pot $(DASHBOARD_DIR)
	$(BIN)/pybabel update --no-fuzzy-matching --width 120 -D dashboard -i $(DASHBOARD_DIR)/locales/dashboard.pot \
		-d $(DASHBOARD_DIR)/locales

run: $(PB)
	$(BIN)/recommender run

serve: $(PB)
	$(BIN)/recommender serve

dashboard: $(PB)
	$(BIN)/recommender dashboard

demo: $(PB)
	$(BIN)/recommender demo

# The dashboard's browser tests need chromium (installed by `make browser`, only when it is missing)
# and axe-core (npm ci, when npm is there); without them they skip, or fail when LUBAN_REQUIRE_BROWSER=1.
TEST_DEPS := $(PB) $(if $(wildcard /usr/bin/chromedriver),,browser) $(if $(shell command -v npm),node_modules/.bin/buf,)
test: $(TEST_DEPS)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Debian's chromium and its driver for the browser tests (no browser is downloaded at test time), and
# fonts for every script the dashboard shows (CJK, Arabic, Thai, ...). Needs root or sudo; never fails
# `make test`: without them the browser tests say how to install them.
BROWSER_PACKAGES := chromium chromium-driver fonts-noto-core fonts-noto-cjk
browser:
	@if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	else echo "make browser: root or sudo is needed to apt-get install $(BROWSER_PACKAGES)"; exit 0; fi; \
	echo "make: installing $(BROWSER_PACKAGES) for the dashboard's browser tests"; \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $(BROWSER_PACKAGES) >/dev/null 2>&1 \
	|| { $$SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q \
		$(BROWSER_PACKAGES) >/dev/null; } || echo "make browser: could not install $(BROWSER_PACKAGES)"

# The docs site: MkDocs with Material, the API reference generated from the .proto's comments.
DOCS_INSTALLED := $(VENV)/.docs-installed
API_REFERENCE := docs/reference/api.md

$(DOCS_INSTALLED): pyproject.toml $(INSTALLED)
	$(BIN)/python -m pip install --progress-bar on -e '.[dev,dask,docs]'
	touch $@

$(API_REFERENCE): $(PROTO) tools/proto_doc.py $(INSTALLED)
	$(BIN)/python tools/proto_doc.py $(PROTO) $@

# NO_MKDOCS_2_WARNING: Material prints a banner about its successor on every build; the build's
# own warnings still fail it (--strict).
docs: $(DOCS_INSTALLED) $(API_REFERENCE)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

node_modules/.bin/buf: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $@

lint: $(PB) node_modules/.bin/buf
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	node_modules/.bin/buf lint

bench: $(PB)
	$(BIN)/python -m pip install -q -e '.[dev,dask,bench]'
	-$(MAKE) pybkt h2load
	$(BIN)/python -m bench
	$(BIN)/python -m bench.serving --profile

bench-quick: $(PB)
	$(BIN)/python -m pip install -q -e '.[dev,dask,bench]'
	-$(MAKE) pybkt h2load
	$(BIN)/python -m bench --quick
	$(BIN)/python -m bench.serving --quick

# The serving section of BENCHMARKS.md alone (make bench runs it too), with a py-spy profile of
# every server process under each load and the per-call breakdown (where each call's GIL-held
# microseconds go)
profile: $(PB)
	$(BIN)/python -m pip install -q -e '.[dev,dask,bench]'
	$(BIN)/python -m bench.serving --profile

# h2load (Debian's nghttp2-client): the C load generator beside the Python one; optional
h2load:
	command -v h2load >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q nghttp2-client >/dev/null; } \
		|| { command -v sudo >/dev/null && sudo -n apt-get install -y -q nghttp2-client >/dev/null; }

clean:
	rm -rf $(VENV) $(PB_DIR)/luban node_modules .mypy_cache .pytest_cache .ruff_cache site $(API_REFERENCE)

# pyBKT gets a virtual environment of its own: it needs scikit-learn < 1.8, and its C++ build
# (fast) must be compiled from the sdist with numpy already present.
PYBKT_VENV := bench/.venv-pybkt
$(PYBKT_VENV)/.installed:
	$(PYTHON) -m venv $(PYBKT_VENV)
	$(PYBKT_VENV)/bin/python -m pip install -q --upgrade pip
	$(PYBKT_VENV)/bin/python -m pip install -q numpy pandas 'scikit-learn<1.8' setuptools wheel
	$(PYBKT_VENV)/bin/python -m pip install -q --no-binary pybkt --no-build-isolation pybkt==1.4.3
	touch $@

pybkt: $(PYBKT_VENV)/.installed
