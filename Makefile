# The Makefile is the interface. Every target bootstraps .venv on first use (Python 3.11 + make is all a
# fresh machine needs): uv is installed into .uv/, then `uv sync --locked` installs exactly uv.lock.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# The interpreter's real path, not a pyenv/asdf shim: `uv sync --python <shim>` never matches .venv's interpreter,
# so uv would delete and rebuild the whole .venv on every sync.
PYTHON ?= $(shell p="$$(command -v python3.11 2>/dev/null || command -v python3)" && "$$p" -c 'import sys; print(sys.executable)' 2>/dev/null)
UV_VERSION := 0.13.9
UV := .uv/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.synced
export UV_PYTHON_DOWNLOADS := never
# OpenMP threads that spin while idle made XGBoost 4.5x slower with 2 threads on a 2-vCPU machine (22.5 s vs
# 3.3 s); they must sleep. Set before any library loads OpenMP (docs/benchmarks.md).
export OMP_WAIT_POLICY := PASSIVE
export UV_PROJECT_ENVIRONMENT := $(VENV)

# Pipeline parameters (see `make help`): SOURCE, STATIONS, MONTHS, TEST_MONTHS, MODELS, SEARCH_BUDGET_S. Only those you set are
# passed; the defaults live in one place, the signature of src/chicago_arrest/pipelines/training.py (`chicago-arrest pipeline run
# --help` lists them).
PIPELINE_ARGS = $(if $(SOURCE),--source '$(SOURCE)') $(if $(STATIONS),--stations '$(STATIONS)') \
  $(if $(MONTHS),--months '$(MONTHS)') $(if $(TEST_MONTHS),--test-months '$(TEST_MONTHS)') \
  $(if $(MODELS),--models '$(MODELS)') $(if $(SEARCH_BUDGET_S),--search-budget-s '$(SEARCH_BUDGET_S)')
# TARGET=vertex (issue 17): Google Cloud project, Vertex AI region, the GCS bucket of the pipeline root and the
# run's service account (empty: the Compute Engine default service account; docs/vertex.md lists its roles).
VERTEX_ARGS = $(if $(PROJECT),--project '$(PROJECT)') $(if $(REGION),--region '$(REGION)') \
  $(if $(BUCKET),--bucket '$(BUCKET)') $(if $(SERVICE_ACCOUNT),--service-account '$(SERVICE_ACCOUNT)')
# VERBOSE=1: a local run streams every step's full output (default: one line per step, each step's log in a file).
VERBOSE_ARG = $(if $(filter-out 0 no false,$(VERBOSE)), --verbose)
# Serving parameters.
# Where the serving and pipeline commands go. Empty: chicago_arrest.core.targets decides (cluster once make kind-up has
# recorded one in .data/cluster.json, else local) and each command's first line says which and why;
# local | cluster (| vertex for pipeline-run) forces it.
TARGET ?=
TARGET_ARG = $(if $(TARGET), --target '$(TARGET)')
# Issue 13: make pipeline-schedule PIPELINE=monitoring|batch-scoring; make batch-score / monitor SOURCE=...
PIPELINE_ARG = $(if $(PIPELINE), --pipeline '$(PIPELINE)')
LOOP_SOURCE_ARG = $(if $(SOURCE), --source '$(SOURCE)')
PERCENT ?= 10
# kubeconfig context of TARGET=cluster (e.g. kind-chicago-arrest); empty: kubectl's current context.
KUBE_CONTEXT ?=
KUBE_CONTEXT_ARG = $(if $(KUBE_CONTEXT), --context '$(KUBE_CONTEXT)')
# make promote|rollback VERSION=n pins registry version n (one that passed the gate).
MODEL_VERSION_ARG = $(if $(VERSION), --version '$(VERSION)')
# make promote FORCE=1: promote a version that is measurably worse on labelled served traffic (recorded on it).
FORCE_ARG = $(if $(filter 1 yes true,$(FORCE)), --force)
HTTP_PORT ?= 8080
GRPC_PORT ?= 8081
# HTTP worker processes of make serve (KServe --workers): 0 = one per available CPU.
WORKERS ?= 0
MLFLOW_PORT ?= 5000
# Image and cluster. The version has one home, pyproject.toml.
PROJECT_VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' pyproject.toml)
IMAGE ?= chicago-arrest:$(PROJECT_VERSION)
# IMAGE set by the user (command line or environment) becomes the KFP steps' image of pipeline-run.
IMAGE_ENV = $(if $(filter-out default file,$(origin IMAGE)),ARREST_IMAGE='$(IMAGE)' )
CLUSTER_NAME ?= chicago-arrest

.PHONY: help install test lint fmt compile pipeline-run year-ahead pipeline-schedule pipeline-unschedule serve canary \
        promote rollback status image kind-load kind-up kind-down kind-smoke kind-diagnose vertex-image vertex-smoke \
        bench lock clean report mlflow-ui batch-score monitor ui-screenshot

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-22s %s\n", $$1, $$2}'

$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version.split()[0] + " (set PYTHON=/path/to/python3.11)")'
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target .uv uv==$(UV_VERSION)

$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --extra dev --extra vertex --compile-bytecode --python $(PYTHON)
	@touch $@

install: $(STAMP) ## Create .venv and install the project with its locked dependencies

lock: $(UV) ## Re-resolve uv.lock after editing pyproject.toml
	$(UV) lock

test: $(STAMP) ## Run the whole test suite (unit, data, model, end-to-end)
	$(PY) -m pytest

lint: $(STAMP) ## ruff, mypy, shellcheck and actionlint (.github/workflows)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/shellcheck kind-cluster/*.sh .ci/run
	$(VENV)/bin/actionlint -shellcheck=$(VENV)/bin/shellcheck -pyflakes= .github/workflows/*.yml

fmt: $(STAMP) ## Format the code
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

compile: $(STAMP) ## Compile the KFP pipeline to src/chicago_arrest/pipelines/compiled/*.yaml (IMAGE= is every step's image; COMPILE_DIR=)
	ARREST_IMAGE='$(IMAGE)' $(PY) -m chicago_arrest.cli pipeline compile$(if $(COMPILE_DIR), --out-dir '$(COMPILE_DIR)')

pipeline-run: $(STAMP) ## Train, register, deploy (on the cluster after make kind-up, else kfp.local; TARGET=local|cluster|vertex PROJECT= REGION= BUCKET= SERVICE_ACCOUNT=); SOURCE=crimes.csv | a.csv.gz,b.parquet | folder, MONTHS=24 ...
	$(IMAGE_ENV)$(PY) -m chicago_arrest.cli pipeline run$(TARGET_ARG)$(VERBOSE_ARG) $(PIPELINE_ARGS) $(VERTEX_ARGS)

year-ahead: $(STAMP) ## Train with the pipeline's steps on TRAIN=files (MONTHS= window, MODELS=), score every later month of TEST=files; OUTPUT=json
	$(PY) -m chicago_arrest.cli model year-ahead --train '$(TRAIN)' --test '$(TEST)' $(if $(MONTHS),--months '$(MONTHS)') \
	  $(if $(MODELS),--models '$(MODELS)') $(if $(OUTPUT),--output '$(OUTPUT)') $(if $(PREDICTIONS),--predictions '$(PREDICTIONS)')

report: $(STAMP) ## Print the newest local run's training report (an .html file) and open it where a browser can
	@$(PY) -m chicago_arrest.cli pipeline report

mlflow-ui: $(STAMP) ## Start the MLflow UI on the local store (MLFLOW_TRACKING_URI honoured) on MLFLOW_PORT
	@uri="$$($(PY) -c 'from chicago_arrest.core.settings import get_settings as g; s = g(); s.mlflow_tracking_uri or s.mlflow_dir.mkdir(parents=True, exist_ok=True); print(s.resolved_tracking_uri())')" && \
	case "$$uri" in http://*|https://*) echo "MLflow at $$uri is a server: open that address in a browser"; exit 0;; esac && \
	echo "MLflow UI of $$uri on http://127.0.0.1:$(MLFLOW_PORT) (Ctrl-C stops it)" && \
	exec $(VENV)/bin/mlflow ui --backend-store-uri "$$uri" --host 127.0.0.1 --port $(MLFLOW_PORT)

pipeline-schedule: $(STAMP) ## Create or update a recurring run on KFP (PIPELINE=training|monitoring|batch-scoring; the kind-up cluster, or KFP_HOST)
	$(PY) -m chicago_arrest.cli pipeline schedule$(TARGET_ARG)$(PIPELINE_ARG)

pipeline-unschedule: $(STAMP) ## Delete a recurring run from KFP (PIPELINE=training|monitoring|batch-scoring)
	$(PY) -m chicago_arrest.cli pipeline unschedule$(TARGET_ARG)$(PIPELINE_ARG)

batch-score: $(STAMP) ## Score SOURCE=file|YYYY-MM[..YYYY-MM] (default: the newest landed month) with the champion or VERSION=n into predictions/ of the store
	$(IMAGE_ENV)$(PY) -m chicago_arrest.cli pipeline batch-score$(TARGET_ARG)$(VERBOSE_ARG)$(LOOP_SOURCE_ARG)$(MODEL_VERSION_ARG)

monitor: $(STAMP) ## Drift and realised performance on SOURCE=file|YYYY-MM[..YYYY-MM]|serving; RETRAIN=auto|never SUMMARY=path.json VERSION=n TRAINING_SOURCE= LABELS=file MIN_LABELLED=n
	$(IMAGE_ENV)$(PY) -m chicago_arrest.cli pipeline monitor$(TARGET_ARG)$(VERBOSE_ARG)$(LOOP_SOURCE_ARG)$(MODEL_VERSION_ARG) \
	  $(if $(RETRAIN),--retrain '$(RETRAIN)') $(if $(SUMMARY),--summary '$(SUMMARY)') \
	  $(if $(TRAINING_SOURCE),--training-source '$(TRAINING_SOURCE)') \
	  $(if $(LABELS),--labels '$(LABELS)') $(if $(MIN_LABELLED),--min-labelled '$(MIN_LABELLED)')

serve: $(STAMP) ## Serve champion (and challenger) with the KServe model server on HTTP_PORT/GRPC_PORT (WORKERS=0: one per CPU)
	$(PY) -m arrest_server --http_port $(HTTP_PORT) --grpc_port $(GRPC_PORT) --workers $(WORKERS)

ui-screenshot: $(STAMP) ## Photograph the web page (/ui/) of the locally served model into docs/img/ui.png (after make pipeline-run; needs Chromium)
	$(PY) tests/e2e/ui_screenshot.py --out docs/img/ui.png

canary: $(STAMP) ## Send PERCENT% of requests to the challenger (TARGET=local|cluster, KUBE_CONTEXT=...)
	$(PY) -m chicago_arrest.cli serving canary --percent $(PERCENT)$(TARGET_ARG)$(KUBE_CONTEXT_ARG)

promote: $(STAMP) ## Make the challenger the champion, 100% of traffic; VERSION=n pins version n; FORCE=1 over a worse served comparison (TARGET=local|cluster)
	$(PY) -m chicago_arrest.cli serving promote$(MODEL_VERSION_ARG)$(FORCE_ARG)$(TARGET_ARG)$(KUBE_CONTEXT_ARG)

rollback: $(STAMP) ## Stop a canary, else undo the last promotion; VERSION=n pins version n (TARGET=local|cluster)
	$(PY) -m chicago_arrest.cli serving rollback$(MODEL_VERSION_ARG)$(TARGET_ARG)$(KUBE_CONTEXT_ARG)

status: $(STAMP) ## Show registry aliases, serving split and (TARGET=cluster) the InferenceService
	$(PY) -m chicago_arrest.cli serving status$(TARGET_ARG)$(KUBE_CONTEXT_ARG)

# One image, IMAGE, is every KFP component's image, the KServe predictor's (the ISVC's custom container)
# and the MLflow server's: loading it loads them all.
image: ## Build the project image (KFP components, KServe predictor); load it into the kind cluster if there is one
	docker build -t $(IMAGE) .
	@if ! command -v kind >/dev/null 2>&1; then \
	  echo "kind is not installed: $(IMAGE) was not loaded into a cluster (make kind-up loads it)"; \
	elif kind get clusters 2>/dev/null | grep -qxF -- '$(CLUSTER_NAME)'; then \
	  echo "Loading $(IMAGE) into kind cluster $(CLUSTER_NAME) (component and predictor image)"; \
	  $(SHELL) kind-cluster/load-image.sh '$(IMAGE)' '$(CLUSTER_NAME)'; \
	else \
	  echo "kind cluster $(CLUSTER_NAME) does not exist: make kind-up will load $(IMAGE) into it"; \
	fi

kind-load: ## Load the project image (KFP components, KServe predictor) into the existing kind cluster
	@command -v docker >/dev/null 2>&1 || { echo "error: docker is not installed or not on PATH (kind loads $(IMAGE) from the local Docker engine)" >&2; exit 1; }
	@command -v kind >/dev/null 2>&1 || { echo "error: kind is not installed or not on PATH (https://kind.sigs.k8s.io)" >&2; exit 1; }
	@kind get clusters 2>/dev/null | grep -qxF -- '$(CLUSTER_NAME)' || { echo "error: kind cluster $(CLUSTER_NAME) does not exist: run make kind-up (it creates the cluster and loads $(IMAGE))" >&2; exit 1; }
	@docker image inspect '$(IMAGE)' >/dev/null 2>&1 || { echo "error: image $(IMAGE) is not in the local Docker engine: run make image" >&2; exit 1; }
	$(SHELL) kind-cluster/load-image.sh '$(IMAGE)' '$(CLUSTER_NAME)'
	@echo "Loaded $(IMAGE) into kind cluster $(CLUSTER_NAME) (component and predictor image)"

kind-up: ## Create the kind cluster with KFP, KServe (Knative + Kourier), MinIO and MLflow
	CLUSTER_NAME=$(CLUSTER_NAME) IMAGE=$(IMAGE) kind-cluster/up.sh

kind-down: ## Delete the kind cluster
	CLUSTER_NAME=$(CLUSTER_NAME) kind-cluster/down.sh

kind-smoke: $(STAMP) ## After kind-up: PASS/FAIL checks of the cluster (components, two runs, canary via Kourier)
	CLUSTER_NAME=$(CLUSTER_NAME) PYTHON=$(PY) kind-cluster/smoke.sh

kind-diagnose: ## One archive (.data/diagnostics/) of nodes, pods, events, the InferenceService, KFP runs, logs of pods not ready
	CLUSTER_NAME=$(CLUSTER_NAME) PYTHON=$(PY) kind-cluster/diagnose.sh

# Vertex AI (issue 28). The image Vertex pulls: Artifact Registry in REGION, repository chicago-arrest (created once:
# docs/vertex.md), the name pipelines/vertex_submit.default_image expects. Built for linux/amd64 (Vertex's machines);
# IMAGE_USER=0 runs it as root, the fallback should Vertex's /gcs mount refuse the image's user (uid 10001).
VERTEX_IMAGE = $(REGION)-docker.pkg.dev/$(PROJECT)/chicago-arrest/chicago-arrest:$(PROJECT_VERSION)

vertex-image: ## Build the image for Vertex AI (linux/amd64) and push it to Artifact Registry (PROJECT= REGION=; IMAGE_USER=0: run as root)
	@test -n '$(PROJECT)' -a -n '$(REGION)' || { echo "error: PROJECT= and REGION= are required (the image goes to REGION-docker.pkg.dev/PROJECT/chicago-arrest)" >&2; exit 1; }
	docker build --platform linux/amd64$(if $(IMAGE_USER), --build-arg RUN_AS=$(IMAGE_USER)) -t $(VERTEX_IMAGE) .
	docker push $(VERTEX_IMAGE)

vertex-smoke: $(STAMP) ## On a real Google Cloud project: PASS/FAIL of image, bucket, account, endpoint (PROJECT= REGION= BUCKET= SERVICE_ACCOUNT=); deletes what it created
	$(IMAGE_ENV)$(PY) -m chicago_arrest.cli pipeline vertex-smoke $(VERTEX_ARGS)

bench: $(STAMP) ## Run the benchmarks in bench/ (results go to docs/benchmarks.md by hand)
	$(PY) -m bench.run_all

clean: ## Remove local run outputs (keeps .venv)
	rm -rf .data local_outputs .pytest_cache .mypy_cache .ruff_cache
