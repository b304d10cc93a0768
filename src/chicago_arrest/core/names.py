"""Every name the project shares between code, manifests, scripts and tests: one home each.

Plain constants, no imports beyond the version: anything (the model server, a KFP component, a test) may import
this module for free. The YAML under ``manifests/`` and the shell under ``kind-cluster/`` spell the same names;
``tests/code/test_names.py`` checks that they agree with this module.
"""

from __future__ import annotations

from chicago_arrest import __version__

# --- MLflow -------------------------------------------------------------------------------------------------
#: MLflow experiment of every training run.
EXPERIMENT_NAME = "chicago-crime-arrest-prediction"
#: Registered model; every training run registers one version.
MODEL_NAME = "chicago-crime-arrest-predictor"
#: Registry alias of the version that serves most traffic.
CHAMPION = "champion"
#: Registry alias of the version under evaluation or canary (never the champion; removed on promote).
CHALLENGER = "challenger"
#: Version tag the gate sets: ``passed`` or ``rejected``. Only a version that passed can be pinned as champion.
GATE_TAG = "gate"
#: Version tags written when a version becomes champion: the one it replaced, when, and by which verb.
PREVIOUS_CHAMPION_TAG = "previous_champion"
CHAMPION_SINCE_TAG = "champion_since"
CHAMPION_BY_TAG = "champion_by"
#: Registered-model tags: when the challenger alias last changed, and (per target) when the split last changed.
CHALLENGER_CHANGED_TAG = "challenger_changed_at"
SPLIT_CHANGED_TAG = "split_changed_at.{target}"
#: Version tag of a challenger: its realised metrics next to the champion's on the traffic each served (issue 26,
#: written by ``make monitor SOURCE=serving``, read by ``make promote`` and ``make status``).
SERVED_COMPARISON_TAG = "served_comparison"
#: Version tag of a champion promoted with ``FORCE=1`` over a measurably worse served comparison: what was forced.
PROMOTE_FORCED_TAG = "promote_forced"

# --- Serving ------------------------------------------------------------------------------------------------
#: The InferenceService, and the model name in V1/V2 URLs (``/v2/models/arrest-predictor/infer``).
ISVC_NAME = "arrest-predictor"
#: Env var that tells a predictor which registry version it serves.
MODEL_VERSION_ENV = "ARREST_SERVER_MODEL_VERSION"
#: KServe's routes of a model (``.format(name=ISVC_NAME)``): V1 predict (``{"instances"}`` in, ``{"predictions"}``
#: out, Vertex AI's own shape), V2 infer (Open Inference Protocol), and the server's V2 readiness.
V1_PREDICT_ROUTE = "/v1/models/{name}:predict"
V2_INFER_ROUTE = "/v2/models/{name}/infer"
V2_READY_ROUTE = "/v2/health/ready"
#: Deployment and Service (namespace :data:`MODELS_NAMESPACE`) that receive KServe's logger events (issue 26).
PAYLOAD_SINK = "payload-sink"

# --- Images -------------------------------------------------------------------------------------------------
#: Repository of the project image (``make image``): every KFP step, the predictor and the MLflow server.
IMAGE_REPOSITORY = "chicago-arrest"
#: The default project image; ``IMAGE=...`` (make) or ``ARREST_IMAGE`` overrides it.
DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"

# --- Cluster ------------------------------------------------------------------------------------------------
#: Namespace of the InferenceService, its S3 Secret and ServiceAccount.
MODELS_NAMESPACE = "models"
#: Namespace of Kubeflow Pipelines; pipeline steps run there.
KFP_NAMESPACE = "kubeflow"
#: Namespace of the MLflow tracking server.
MLFLOW_NAMESPACE = "mlflow"
#: Namespace of MinIO.
MINIO_NAMESPACE = "minio"
#: ConfigMap and Secret (namespace :data:`KFP_NAMESPACE`) that give pipeline steps the store and MLflow.
STEP_CONFIG_MAP = "chicago-arrest-config"
STEP_SECRET = "chicago-arrest-s3"

# --- Object store -------------------------------------------------------------------------------------------
#: Raw and curated data.
DATA_BUCKET = "chicago-crime"
#: MLflow artifacts (cluster).
MLFLOW_BUCKET = "mlflow"
#: Model versions that KServe serves (``s3://models/arrest-predictor/v<N>/``).
MODELS_BUCKET = "models"
#: What the InferenceService served, as KServe's logger sent it (the payload sink writes, monitoring reads).
SERVED_BUCKET = "inference-logs"
BUCKETS = (DATA_BUCKET, MLFLOW_BUCKET, MODELS_BUCKET, SERVED_BUCKET)

# --- Pipelines ----------------------------------------------------------------------------------------------
#: Calendar months of the training window (``MONTHS``; the last two are the test months). 24 since issue 27: on
#: the months after them, two years of records beat one by more than the noise (docs/model.md, "The training
#: window"); a file of one year still gives a window of that year.
WINDOW_MONTHS = 24
#: KFP experiment of every run and recurring run the project starts (``pipeline run``, schedules, retraining).
KFP_EXPERIMENT = "chicago-arrest"
TRAINING_PIPELINE = "chicago-arrest-training"
#: The Vertex AI Pipelines variant (``pipelines/vertex_training.py``, ``make pipeline-run TARGET=vertex``).
VERTEX_PIPELINE = "chicago-arrest-vertex-training"
#: ``make vertex-smoke`` (issue 28): one step in the project image, a tiny model uploaded and deployed.
VERTEX_SMOKE_PIPELINE = "chicago-arrest-vertex-smoke"
#: Issue 13: bulk scoring into the object store, and drift / realised-performance monitoring.
BATCH_SCORING_PIPELINE = "chicago-arrest-batch-scoring"
MONITORING_PIPELINE = "chicago-arrest-monitoring"

# --- Data ---------------------------------------------------------------------------------------------------
#: Every timestamp of the data is wall-clock time in Chicago.
CHICAGO_TZ = "America/Chicago"
