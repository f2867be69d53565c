# The two commands a new user needs: `make sweep` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
TRACKING_URI ?= $(or $(MLFLOW_TRACKING_URI),sqlite:///$(CURDIR)/mlflow.db)
HOST ?= 127.0.0.1
PORT ?= 5000
# The offline default grid: every tiny model x every pruning method x three ratios.
SWEEP_ARGS ?= -m model=tiny_cnn,tiny_convnext,tiny_effnet,tiny_vit 'pruner=glob(*)' ratio=0.3,0.5,0.7
PYTEST_ARGS ?=

.PHONY: install sweep test ui report clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

sweep: $(STAMP)
	$(PY) -m sweep $(SWEEP_ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

ui: $(STAMP)
	$(VENV)/bin/mlflow ui --backend-store-uri $(TRACKING_URI) --host $(HOST) --port $(PORT)

clean:
	rm -rf multirun/2* multirun/single reports .pytest_cache
