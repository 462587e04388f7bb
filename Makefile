# gan_jax: `make run` trains the default experiment, `make test` runs the whole suite.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXPERIMENT ?= experiments/ring8_non_saturating.cfg
WORKDIR    ?= runs/$(basename $(notdir $(EXPERIMENT)))
JOBS       ?= 2

.PHONY: run test bench install clean

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,torch-reference]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m gan_jax.main --flagfile=$(EXPERIMENT) --workdir=$(WORKDIR)

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -q tests

bench: $(STAMP)
	$(PY) bench/toy_throughput.py

clean:
	rm -rf $(VENV) runs
