# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench fuzz preview clean goldens

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,desktop]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/flashgen build examples/

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/run.py --sizes $${SIZES:-book,8000,100000}

fuzz: $(STAMP)
	FLASHGEN_FUZZ_EXAMPLES=$${EXAMPLES:-20000} $(PY) -m pytest -q tests/test_properties.py

goldens: $(STAMP)
	$(PY) -m pytest -q --update-goldens tests/test_goldens.py tests/test_dedupe.py tests/test_render.py

clean:
	rm -rf $(VENV) out .pytest_cache
