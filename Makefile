# The two commands: `make run` (SOURCE=camera index, video, frame folder or URL) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SOURCE ?= 0
ARGS ?=

.PHONY: run test install dev clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

# Dev set-up adds pytest and the [train] extra (Keras 3 on CPU torch 2.13.0), so the
# training path is tested too.
$(VENV)/.dev: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev,train]'
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.dev

run: $(VENV)/.installed
	$(VENV)/bin/blinkgate run --source "$(SOURCE)" $(ARGS)

test: $(VENV)/.dev
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
