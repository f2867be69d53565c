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
REPORT_ARGS ?=

.PHONY: install browser sweep test ui server report clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

sweep: $(STAMP)
	$(PY) -m sweep $(SWEEP_ARGS)

# The MLflow UI test drives Debian's Chromium (a browser download at test time fails offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is not installed (apt-get install chromium as root): the browser test will be skipped"; fi; }

test: $(STAMP) browser
	$(PY) -m pytest $(PYTEST_ARGS)

# The MLflow UI over the sweep store (MLflow's job runner is off: it only slows start-up).
ui: $(STAMP)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui --backend-store-uri $(TRACKING_URI) --host $(HOST) --port $(PORT) --workers 1

# A tracking server for jobs on other nodes: make server HOST=0.0.0.0 (see README, Cluster).
server: $(STAMP)
	$(PY) -m sweep.server --backend-store-uri $(TRACKING_URI) --host $(HOST) --port $(PORT)

report: $(STAMP)
	$(PY) -m sweep.report --tracking-uri $(TRACKING_URI) $(REPORT_ARGS)

clean:
	rm -rf multirun/2* multirun/single reports .pytest_cache
