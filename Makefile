# Quick start: `make demo` runs the main job, `make test` runs lint and the tests.
# Both create .venv on first use. torch is pinned on every pip call: an unpinned torch would pull
# another multi-GB build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: install test lint demo bench docs clean

# facenet-pytorch ships MTCNN's pretrained weights (faces experiment and tests); it pins
# torch<2.3, which its networks do not need: installed without its dependencies.
$(STAMP): pyproject.toml lab/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e ".[dev]" -e lab $(TORCH_PINS)
	$(PY) -m pip install --quiet --no-deps facenet-pytorch==2.6.0
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q -n 2 --dist worksteal

demo: $(STAMP)
	$(VENV)/bin/inn demo

bench: $(STAMP)
	$(PY) -m benchmarks

# The site (mkdocs, API reference from the docstrings) into site/; --strict: warnings are errors.
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e ".[docs]" $(TORCH_PINS)
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(VENV)/bin/mkdocs build --strict --quiet --site-dir site

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis site
