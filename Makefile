# The two commands: `make run` (SOURCE=camera index, video, frame folder or URL) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SOURCE ?= 0
ARGS ?=

.PHONY: run test install dev clean eval bench

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

# Dev set-up adds pytest and the [train] extra (Keras 3 on CPU torch 2.13.0), so the
# training path is tested too. PyPI's torch for Linux x86_64 is the CUDA build (several GB):
# where PyTorch's CPU index answers, torch comes from there. Asked only here, and skipped where
# it does not answer (a machine whose registry is a local mirror), so the install never waits on it.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
torch_index = $(shell $(PYTHON) -c "import urllib.request; urllib.request.urlopen('$(TORCH_INDEX)/torch/', timeout=5)" \
	>/dev/null 2>&1 && echo --extra-index-url $(TORCH_INDEX))
$(VENV)/.dev: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev,train]' $(torch_index)
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.dev

# blinkgate's hint for a missing camera names its own flag (--source); a make user sets SOURCE.
# Said on a usage error (exit 2) for a camera number, unless that camera's device is there
# (Linux: /dev/videoN), so a mistyped ARGS with the camera plugged in gets no camera hint.
CAMERA_DEV ?= /dev/video
run: $(VENV)/.installed
	@$(VENV)/bin/blinkgate run --source "$(SOURCE)" $(ARGS) || { code=$$?; \
		case "$(SOURCE)" in *[!0-9]*|'') ;; *) [ $$code -ne 2 ] || [ -e "$(CAMERA_DEV)$(SOURCE)" ] || \
			echo "make run: to watch a video file, frame folder or URL instead: make run SOURCE=door.mp4" >&2 ;; esac; \
		exit $$code; }

test: $(VENV)/.dev
	$(PY) -m pytest

# APCER/BPCER/ACER table (docs/evaluation.md): real data plus simulated print attacks, which are
# made once into out/sim (about an hour on 2 cores). Report in out/eval. Made in out/sim.partial
# and moved when whole: a run that stops writes the manifest of what it finished, which make
# would otherwise take for the whole set.
SIM_COUNT ?= 510
SIM_SEED ?= 0
out/sim/manifest.csv: | $(VENV)/.dev
	rm -rf out/sim.partial
	$(VENV)/bin/blinkgate simulate-attack ../shared/data/faces ../shared/data/photo-attack/nuaa/ClientRaw \
		--out out/sim.partial --seed $(SIM_SEED) --count $(SIM_COUNT) --jobs 2
	rm -rf out/sim && mv out/sim.partial out/sim

eval: $(VENV)/.dev out/sim/manifest.csv
	$(VENV)/bin/blinkgate eval manifests/real.toml out/sim/manifest.csv --report out/eval

# Speed table (docs/benchmarks.md): blinkgate against the article's pipeline, one core. Report in out/bench.
bench: $(VENV)/.dev
	$(PY) benchmarks/speed.py --report out/bench

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
