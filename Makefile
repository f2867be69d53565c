# The two commands a new user needs: `make sweep` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Empty: the project's default store (sweep.tracking.DEFAULT_URI, or $MLFLOW_TRACKING_URI).
TRACKING_URI ?=
HOST ?= 127.0.0.1
PORT ?= 5000
# make server BACKEND=postgresql (the database in $SWEEP_POSTGRES_URI, see scripts/postgres-local.sh);
# AUTH=1: MLflow's basic-auth app, admin account from MLFLOW_TRACKING_USERNAME / _PASSWORD
BACKEND ?=
AUTH ?=
WORKERS ?= 1
# The offline default grid: every tiny model x six methods (a mask, 2:4, the random and magnitude
# baselines, a gradient and a global criterion) x three MACs targets, so that every row of a comparison
# is at the same cost; each pruned model fine-tuned for 1 epoch (one-shot and recovered top-1 side by
# side in the report), timed in eager PyTorch and where such models are deployed (ONNX Runtime,
# OpenVINO). Every method: SWEEP_ARGS="-m model=... 'pruner=glob(*)' target.macs=0.5".
SWEEP_PRUNERS ?= l1_unstructured,semi_2_4,dg_random,dg_group,dg_taylor,dg_lamp
SWEEP_RUNTIMES ?= eager,onnxruntime,openvino
# The forms each job logs as MLflow models (`log_models`): ONNX only here; the PyTorch form (torch.export)
# adds about 1 s a job, a fifth of a tiny model's job (a seed model's job takes minutes).
SWEEP_LOG_MODELS ?= onnx
SWEEP_ARGS ?= -m model=tiny_cnn,tiny_convnext,tiny_effnet,tiny_vit pruner=$(SWEEP_PRUNERS) target.macs=0.7,0.5,0.3 finetune.epochs=1 'measure.runtimes=[$(SWEEP_RUNTIMES)]' 'log_models=[$(SWEEP_LOG_MODELS)]'
PYTEST_ARGS ?=
# pytest-xdist workers: one per core (TEST_WORKERS=0 runs the suite serially, in one process). A test
# file stays on one worker (--dist loadfile): its module fixtures (a sweep, an image tree) are made once;
# files start in the order tests/conftest.py gives them (end-to-end files first), not xdist's own.
TEST_WORKERS ?= auto
XDIST := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder
REPORT_ARGS ?=
LINTED := src tests benchmarks examples scripts
# Bytecode is written on first import, into .venv and __pycache__/, not compiled by pip for every
# installed file: the tool imports about 4,700 of the 17,000 (torch, timm, MLflow), compiled once in
# about 15 s. A PYTHONDONTWRITEBYTECODE in the environment would make every process the suite and a
# sweep start (about 100) compile torch and timm again from source, 10 to 20 s each.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install browser sweep test test-fast docs lint format ui server report clean

# uv installs from pyproject.toml's ranges what pip would (no bytecode compiled either) in under half the
# time: it downloads in parallel and links files from its cache instead of unpacking each wheel (torch's
# CUDA build alone is 5.5 GB). It reads no pip.conf, so the constraints pip is configured with are passed
# on. Where uv cannot be installed or cannot reach the index, pip does the install.
PIP_CONSTRAINT_FILE = $(shell $(PYTHON) -m pip config list 2>/dev/null | sed -n "s/^global\.constraint='\(.*\)'$$/\1/p")
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	{ $(PY) -m pip install -q uv \
	  && $(VENV)/bin/uv pip install -q --python $(PY) $(addprefix --constraint ,$(PIP_CONSTRAINT_FILE)) -e '.[dev,deploy]'; } \
	|| $(PY) -m pip install -q --no-compile -e '.[dev,deploy]'
	touch $(STAMP)

install: $(STAMP)

sweep: $(STAMP)
	$(PY) -m sweep $(SWEEP_ARGS) $(if $(TRACKING_URI),tracking.uri=$(TRACKING_URI))

# The MLflow UI test drives Debian's Chromium (a browser download at test time fails offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is not installed (apt-get install chromium as root): the browser test will be skipped"; fi; }

# The deployment-runtime tests (ONNX Runtime, OpenVINO, inductor and INT8 in the test process) run in a pytest
# process of their own: late in one session with the whole suite the process died there of a SIGSEGV
# (a corrupted call table, not a Python error), never with those tests alone nor in sweeps or benchmarks.
# That process runs beside the xdist workers, not after them, on one thread (SWEEP_TEST_THREADS): it fills
# the cores the workers leave idle while their sweeps and servers start and at the end of the run; its
# output follows theirs; it keeps no .pytest_cache, which the workers' pytest writes at the same time.
# $(1): the marker expression; $(2): the runtime test files; $(3): more pytest arguments for the workers.
RUNTIME_TESTS := tests/measure/test_runtimes.py tests/measure/test_quantize.py
RUNTIME_JOBS := tests/e2e/test_runtimes_jobs.py tests/e2e/test_quantize_jobs.py
define run_suite
	@log=$$(mktemp); \
	SWEEP_TEST_THREADS=1 $(PY) -m pytest -p no:cacheprovider $(if $(1),-m "$(1)") $(2) > $$log 2>&1 & side=$$!; \
	$(PY) -m pytest $(XDIST) $(if $(1),-m "$(1)") $(3) $(addprefix --ignore=,$(2)); main=$$?; \
	wait $$side; other=$$?; \
	echo "--- $(2), in a process of their own beside the workers (exit status $$other) ---"; \
	cat $$log; rm -f $$log; \
	test $$main = 0 && test $$other = 0
endef

test: $(STAMP) browser
ifeq ($(strip $(PYTEST_ARGS)),)
	$(call run_suite,,$(RUNTIME_TESTS) $(RUNTIME_JOBS),)
else
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)
endif

# The inner loop: the tests of each package, without tests/e2e/ (the CLI, whole jobs and sweeps, servers,
# SLURM, the browser) and without slow tests; the runtime tests in a process of their own, as in
# `make test` (a test worker running them among other files died of the same SIGSEGV).
test-fast: $(STAMP)
ifeq ($(strip $(PYTEST_ARGS)),)
	$(call run_suite,not slow,$(RUNTIME_TESTS),--ignore=tests/e2e)
else
	$(PY) -m pytest $(XDIST) -m "not slow" --ignore=tests/e2e $(PYTEST_ARGS)
endif

# The documentation site: the reference pages rendered from the code, then the site built into site/
# with --strict (a broken link, or a page missing from the nav, fails).
docs: $(STAMP)
	$(PY) -m sweep.cli.reference docs/reference
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/lint-imports --no-cache

format: $(STAMP)
	$(VENV)/bin/ruff check --fix $(LINTED)
	$(VENV)/bin/ruff format $(LINTED)

# The MLflow UI over the sweep store (a tracking server bound to HOST, loopback by default).
ui: $(STAMP)
	$(PY) -m sweep.cli.server $(if $(TRACKING_URI),--backend-store-uri $(TRACKING_URI)) $(if $(BACKEND),--backend $(BACKEND)) \
	  $(if $(AUTH),--auth) --workers $(WORKERS) --host $(HOST) --port $(PORT)

# A tracking server for jobs on other nodes: make server HOST=0.0.0.0 (see docs/clusters.md).
server: ui

report: $(STAMP)
	$(PY) -m sweep.report $(if $(TRACKING_URI),--tracking-uri $(TRACKING_URI)) $(REPORT_ARGS)

clean:
	rm -rf multirun/2* multirun/single reports site .pytest_cache
