# The one project image: every KFP component and the KServe predictor run from it (and, on the kind cluster,
# the MLflow server). Build with `make image` (docker build -t chicago-arrest:0.1.0 .); BuildKit is required
# (the default builder of Docker Engine >= 23 and Docker Desktop).
#
# Dependencies come from uv.lock only (`uv sync --locked`): the runtime dependencies of pyproject.toml, without
# the `dev` extra (pytest, moto, ruff, mypy, ...). Versions are pinned in kind-cluster/versions.env as well.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---- build: resolve nothing, install exactly uv.lock into /opt/venv ------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ARG UV_VERSION=0.13.9
RUN python -m pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore "uv==${UV_VERSION}"

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/venv

WORKDIR /src

# 1) Third-party dependencies only: this layer is reused until pyproject.toml or uv.lock change.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --no-install-project

# 2) The project itself (packages chicago_arrest and arrest_server, with the web page's files under
#    arrest_server/ui/static as package data), installed as a regular wheel so that
#    /opt/venv does not point back to /src. pip is added from the interpreter's bundled wheel (no download),
#    so KFP lightweight components that `pip install kfp==<same version>` find it already satisfied.
COPY README.md ./
COPY src ./src
COPY serving ./serving
# Package data: src/chicago_arrest/resources/ links to the InferenceService manifest and the kind overlay's patch.
COPY manifests/base/inferenceservice.yaml ./manifests/base/
COPY manifests/overlays/kind/patch-resources.yaml ./manifests/overlays/kind/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable \
 && /opt/venv/bin/python -m ensurepip --default-pip \
 && /opt/venv/bin/python -c "import arrest_server, chicago_arrest, kfp, kserve, mlflow, boto3, sklearn, xgboost" \
 && /opt/venv/bin/python -c "from arrest_server.ui.paths import STATIC_DIR as d; assert (d / 'index.html').is_file(), d; \
      assert {'app.js', 'api.js', 'dom.js', 'map.js', 'versions.js', 'file.js'} <= {p.name for p in d.glob('*.js')}, d"

# ---- runtime: the interpreter, the venv and an unprivileged user -----------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG APP_UID=10001
RUN groupadd --system --gid "${APP_UID}" app \
 && useradd --system --uid "${APP_UID}" --gid app --home-dir /home/app --create-home --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv

# Thread pools default to one thread: the predictor gets at most 1 CPU (its InferenceService container pins the
# same values) and many pods share one kind node. Training steps size XGBoost / random forest from the pod's CPU
# limit (chicago_arrest.core.runtime.available_cpus). Idle OpenMP threads sleep instead of spinning: with spinning,
# XGBoost trained 4.5x slower with 2 threads than with 1 on a 2-vCPU machine (docs/benchmarks.md).
ENV PATH=/opt/venv/bin:${PATH} \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    OMP_NUM_THREADS=1 \
    OMP_WAIT_POLICY=PASSIVE \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    NUMEXPR_NUM_THREADS=1 \
    VECLIB_MAXIMUM_THREADS=1 \
    MPLBACKEND=Agg \
    HOME=/home/app

LABEL org.opencontainers.image.title="chicago-arrest" \
      org.opencontainers.image.description="Chicago crime arrest prediction: KFP components and KServe V2 predictor" \
      org.opencontainers.image.licenses="Apache-2.0"

WORKDIR /home/app
# Numeric, so Kubernetes can enforce runAsNonRoot. RUN_AS=0 (make vertex-image IMAGE_USER=0) builds the same image
# running as root: the fallback for Vertex AI Pipelines should its /gcs mount (Cloud Storage FUSE, by default owned
# by the mounting user, 0644/0755, no allow_other) refuse uid 10001 (docs/vertex.md, "The image").
ARG RUN_AS=${APP_UID}
USER ${RUN_AS}:${RUN_AS}

# KServe model server: HTTP (REST, V1 and V2) and gRPC.
EXPOSE 8080 8081
CMD ["python", "-m", "arrest_server"]
