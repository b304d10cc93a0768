#!/usr/bin/env bash
# Bring up the local cluster of chicago-arrest on kind: cert-manager, Kubeflow Pipelines (platform-agnostic,
# with its own SeaweedFS for pipeline artifacts), Knative Serving + Kourier, KServe (Knative mode), MinIO
# (buckets for data, MLflow artifacts and models; generated keys), the `models` namespace with its S3
# Secret and RBAC for KFP's pipeline-runner, and an MLflow tracking server. Objects of the project come from
# manifests/platform (plain YAML).
#
# Usage:   make image && make kind-up          (or: CLUSTER_NAME=... IMAGE=... kind-cluster/up.sh)
# Needs:   docker (engine running), kind, kubectl, git (kubectl -k fetches KFP from GitHub), python3,
#          internet access, and a Docker VM with >= 8 CPUs / 16 GB (see kind-cluster/README.md).
# Re-run:  safe. Every step is an apply, a guarded create or an idempotent patch.
#
# Environment (all optional):
#   CLUSTER_NAME      kind cluster name (default chicago-arrest; kubectl context kind-$CLUSTER_NAME)
#   IMAGE             project image to load into kind and run (default chicago-arrest:0.1.0)
#   MLFLOW_IMAGE      image of the MLflow server (default: $IMAGE, which has mlflow and boto3 from uv.lock)
#   SKIP_IMAGE_LOAD   1: do not `kind load` the images (they must then be pullable by the node)
#   KEEP_LLMISVC      1: keep KServe's llmisvc controller running (default: scaled to 0, not needed here)
#   S3_ACCESS_KEY / S3_SECRET_KEY
#                     MinIO's root keys on the first run (default: generated); later runs keep the Secret
#                     minio/minio-root. Copied into the Secrets of models/, mlflow/ and kubeflow/.
#   WAIT_TIMEOUT      per-wait timeout (default 600s); KFP_WAIT_TIMEOUT for KFP's deployments (default 900s)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${HERE}/.." && pwd)"
PLATFORM="${REPO_ROOT}/manifests/platform"
# shellcheck source=versions.env
source "${HERE}/versions.env"

CLUSTER_NAME="${CLUSTER_NAME:-chicago-arrest}"
IMAGE="${IMAGE:-chicago-arrest:0.1.0}"
MLFLOW_IMAGE="${MLFLOW_IMAGE:-${IMAGE}}"
SKIP_IMAGE_LOAD="${SKIP_IMAGE_LOAD:-0}"
KEEP_LLMISVC="${KEEP_LLMISVC:-0}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-600s}"
KFP_WAIT_TIMEOUT="${KFP_WAIT_TIMEOUT:-900s}"
CONTEXT="kind-${CLUSTER_NAME}"

# The project's object store: MinIO in namespace minio (manifests/platform and chicago_arrest.names; a test
# checks these agree). KFP keeps its own SeaweedFS for pipeline artifacts.
S3_ENDPOINT="minio.minio.svc.cluster.local:9000"
S3_REGION="us-east-1"
DATA_BUCKET="chicago-crime"
MLFLOW_BUCKET="mlflow"
MODELS_BUCKET="models"
BUCKETS="${DATA_BUCKET}, ${MLFLOW_BUCKET}, ${MODELS_BUCKET}"
MLFLOW_IN_CLUSTER_URI="http://mlflow.mlflow.svc.cluster.local:5000"
# The image named in manifests/platform, replaced by IMAGE when applying.
DEFAULT_IMAGE="chicago-arrest:0.1.0"
# NodePorts that kind-config.yaml maps to localhost (3000, 8180; MLflow's 30500 is in manifests/platform/mlflow.yaml).
KFP_UI_NODE_PORT=30080
KOURIER_NODE_PORT=31080

GH="https://github.com"
CERT_MANAGER_URL="${GH}/cert-manager/cert-manager/releases/download/${CERT_MANAGER_VERSION}/cert-manager.yaml"
KFP_KUSTOMIZE="github.com/kubeflow/pipelines/manifests/kustomize"
KNATIVE_URL="${GH}/knative/serving/releases/download/${KNATIVE_SERVING_VERSION}"
KOURIER_URL="${GH}/knative-extensions/net-kourier/releases/download/${KNATIVE_KOURIER_VERSION}/kourier.yaml"
KSERVE_URL="${GH}/kserve/kserve/releases/download/${KSERVE_VERSION}"

log() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
  printf 'ERROR: %s\n' "$*" >&2
  exit 1
}
# kubectl pinned to this cluster's context, so a changed current-context never receives these objects.
k() { kubectl --context "${CONTEXT}" "$@"; }

# retry ATTEMPTS DELAY_SECONDS COMMAND...: for webhooks that are not serving yet and CRDs not yet established.
retry() {
  local attempts="$1" delay="$2" n=1
  shift 2
  until "$@"; do
    if ((n >= attempts)); then
      warn "giving up after ${attempts} attempts: $*"
      return 1
    fi
    warn "attempt ${n}/${attempts} failed, retrying in ${delay}s: $*"
    sleep "${delay}"
    n=$((n + 1))
  done
}

preflight() {
  log "Checking prerequisites"
  local tool
  for tool in docker kind kubectl git python3; do
    command -v "${tool}" >/dev/null 2>&1 || die "${tool} is required but not on PATH (see kind-cluster/README.md)"
  done
  docker info >/dev/null 2>&1 || die "cannot reach the Docker engine: is Docker running?"
  info "kind $(kind version 2>/dev/null || echo '(unknown version)'); node image built for kind ${KIND_MIN_VERSION}+"

  case "$(uname -m)" in
    x86_64 | amd64) ;;
    *) warn "host is $(uname -m): KFP and several runtime images are amd64-only (kubeflow/pipelines#12705)" ;;
  esac

  local ncpu mem_bytes gib
  ncpu="$(docker info --format '{{.NCPU}}' 2>/dev/null || true)"
  mem_bytes="$(docker info --format '{{.MemTotal}}' 2>/dev/null || true)"
  [[ "${ncpu}" =~ ^[0-9]+$ ]] || ncpu=0
  [[ "${mem_bytes}" =~ ^[0-9]+$ ]] || mem_bytes=0
  gib=$((mem_bytes / 1024 / 1024 / 1024))
  info "Docker engine: ${ncpu} CPUs, ${gib} GiB memory (recommended: 8 CPUs / 16 GB; minimum 6 / 12 GB)"
  if ((ncpu < 6 || gib < 11)); then
    warn "Docker has ${ncpu} CPUs / ${gib} GiB: 8 CPUs / 16 GB are recommended, 6 / 12 GB is the minimum"
  fi
  # On Linux the engine shares the host's memory: what is free now matters too.
  if [[ -r /proc/meminfo ]]; then
    local available_gib
    available_gib="$(awk '/^MemAvailable:/ {printf "%d", $2 / 1024 / 1024}' /proc/meminfo)"
    if [[ "${available_gib}" =~ ^[0-9]+$ ]] && ((available_gib < 10)); then
      warn "only ${available_gib} GiB of memory is free on this host: the cluster requests about 8-9 GiB"
    fi
  fi

  if [[ -r /proc/sys/fs/inotify/max_user_instances ]]; then
    local instances
    instances="$(cat /proc/sys/fs/inotify/max_user_instances)"
    if ((instances < 2280)); then
      warn "fs.inotify.max_user_instances=${instances}: many pods on one node can hit 'too many open files'; run" \
        "sudo sysctl fs.inotify.max_user_instances=2280 fs.inotify.max_user_watches=1255360"
    fi
  fi

  if [[ "${SKIP_IMAGE_LOAD}" != "1" ]] && ! docker image inspect "${IMAGE}" >/dev/null 2>&1; then
    die "image ${IMAGE} is not in the local Docker engine: run \`make image\` first (or SKIP_IMAGE_LOAD=1)"
  fi
  [[ -f "${PLATFORM}/minio.yaml" ]] || die "${PLATFORM} is missing: run from a full checkout"
}

create_cluster() {
  log "kind cluster ${CLUSTER_NAME} (${KIND_NODE_IMAGE%@*})"
  local clusters
  clusters="$(kind get clusters 2>/dev/null || true)"
  if grep -qx "${CLUSTER_NAME}" <<<"${clusters}"; then
    info "already exists: reusing it"
  else
    kind create cluster --name "${CLUSTER_NAME}" --image "${KIND_NODE_IMAGE}" \
      --config "${HERE}/kind-config.yaml" --wait 180s
  fi
  kind export kubeconfig --name "${CLUSTER_NAME}" >/dev/null
  k wait --for=condition=Ready node --all --timeout="${WAIT_TIMEOUT}"
}

load_images() {
  if [[ "${SKIP_IMAGE_LOAD}" == "1" ]]; then
    info "SKIP_IMAGE_LOAD=1: not loading ${IMAGE} into kind"
    return
  fi
  log "Loading ${IMAGE} into the kind node (about 1.5 GB; skipped if already there)"
  kind load docker-image "${IMAGE}" --name "${CLUSTER_NAME}"
  if [[ "${MLFLOW_IMAGE}" != "${IMAGE}" ]] && docker image inspect "${MLFLOW_IMAGE}" >/dev/null 2>&1; then
    kind load docker-image "${MLFLOW_IMAGE}" --name "${CLUSTER_NAME}"
  fi
}

install_cert_manager() {
  log "cert-manager ${CERT_MANAGER_VERSION}"
  retry 3 10 k apply -f "${CERT_MANAGER_URL}"
  k -n cert-manager wait --for=condition=Available deployment --all --timeout="${WAIT_TIMEOUT}"
}

install_kfp() {
  log "Kubeflow Pipelines ${KFP_VERSION} (env/platform-agnostic: MySQL, SeaweedFS, Argo)"
  retry 3 15 k apply -k "${KFP_KUSTOMIZE}/cluster-scoped-resources?ref=${KFP_VERSION}"
  k wait --for=condition=established --timeout=120s crd/applications.app.k8s.io
  # Retried: "no matches for kind ..." while freshly created CRDs are being established.
  retry 5 20 k apply -k "${KFP_KUSTOMIZE}/env/platform-agnostic?ref=${KFP_VERSION}"
  info "waiting for every KFP deployment (first image pulls take minutes; ml-pipeline restarts until MySQL is up)"
  k -n kubeflow wait --for=condition=Available deployment --all --timeout="${KFP_WAIT_TIMEOUT}"
  # The UI (which also proxies the KFP API for kfp.Client) on localhost:3000 through kind-config.yaml.
  k -n kubeflow patch service ml-pipeline-ui \
    -p "{\"spec\":{\"type\":\"NodePort\",\"ports\":[{\"port\":80,\"nodePort\":${KFP_UI_NODE_PORT}}]}}"
}

install_knative() {
  log "Knative Serving ${KNATIVE_SERVING_VERSION} + Kourier ${KNATIVE_KOURIER_VERSION}"
  retry 3 10 k apply -f "${KNATIVE_URL}/serving-crds.yaml"
  k wait --for=condition=established --timeout=120s \
    crd/services.serving.knative.dev crd/revisions.serving.knative.dev crd/configurations.serving.knative.dev
  retry 5 10 k apply -f "${KNATIVE_URL}/serving-core.yaml"
  retry 5 10 k apply -f "${KOURIER_URL}"
  # Kourier as the ingress; a domain the ingress serves (the default svc.cluster.local gives 404s);
  # no tag-to-digest resolution for images loaded with `kind load` or pulled from Docker Hub.
  k -n knative-serving patch configmap/config-network --type merge \
    -p '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'
  k -n knative-serving patch configmap/config-domain --type merge -p '{"data":{"example.com":""}}'
  k -n knative-serving patch configmap/config-deployment --type merge \
    -p '{"data":{"registries-skipping-tag-resolving":"kind.local,ko.local,dev.local,index.docker.io,docker.io"}}'
  k -n knative-serving wait --for=condition=Available deployment --all --timeout="${WAIT_TIMEOUT}"
  k -n kourier-system wait --for=condition=Available deployment --all --timeout="${WAIT_TIMEOUT}"
  # Service kourier stays a LoadBalancer (<pending> on kind); pin its NodePort so localhost:8180 reaches it.
  k -n kourier-system patch service kourier \
    -p "{\"spec\":{\"ports\":[{\"port\":80,\"nodePort\":${KOURIER_NODE_PORT}}]}}"
}

configure_kserve_ingress() {
  # Merge disableIstioVirtualHost into the existing ingress JSON. Replacing the whole value (as a one-line
  # patch would) drops ingressGateway and breaks the controller ("ingressGateway is required").
  local current patch
  current="$(k -n kserve get configmap inferenceservice-config -o jsonpath='{.data.ingress}')"
  [[ -n "${current}" ]] || die "configmap kserve/inferenceservice-config has no 'ingress' key"
  patch="$(
    printf '%s' "${current}" | python3 -c '
import json, sys
ingress = json.load(sys.stdin)
if ingress.get("disableIstioVirtualHost") is not True:
    ingress["disableIstioVirtualHost"] = True
    print(json.dumps({"data": {"ingress": json.dumps(ingress, indent=2)}}))
'
  )"
  if [[ -z "${patch}" ]]; then
    info "ingress: disableIstioVirtualHost already true"
    return
  fi
  k -n kserve patch configmap inferenceservice-config --type merge -p "${patch}"
  k -n kserve rollout restart deployment/kserve-controller-manager
  k -n kserve rollout status deployment/kserve-controller-manager --timeout="${WAIT_TIMEOUT}"
}

install_kserve() {
  log "KServe ${KSERVE_VERSION} (Knative mode, Kourier ingress)"
  k create namespace kserve --dry-run=client -o yaml | k apply -f -
  # --server-side: the InferenceService CRD is too large for client-side apply's annotation.
  # --force-conflicts: re-runs take back fields that this script patched afterwards.
  retry 5 15 k apply --server-side --force-conflicts -f "${KSERVE_URL}/kserve.yaml"
  k -n kserve wait --for=condition=Ready certificate/serving-cert --timeout="${WAIT_TIMEOUT}"
  k -n kserve wait --for=condition=Available deployment/kserve-controller-manager --timeout="${WAIT_TIMEOUT}"
  # Retried: the webhook refuses connections for a while after the controller reports Available.
  retry 10 15 k apply --server-side --force-conflicts -f "${KSERVE_URL}/kserve-cluster-resources.yaml"
  configure_kserve_ingress
  if [[ "${KEEP_LLMISVC}" != "1" ]] && k -n kserve get deployment llmisvc-controller-manager >/dev/null 2>&1; then
    info "scaling llmisvc-controller-manager to 0 (LLM serving is not used; KEEP_LLMISVC=1 keeps it)"
    k -n kserve scale deployment llmisvc-controller-manager --replicas=0
  fi
}

secret_value() {
  # secret_value NAMESPACE SECRET KEY: prints one key of a Secret, or nothing when it does not exist.
  k -n "$1" get secret "$2" -o "go-template={{with index .data \"$3\"}}{{. | base64decode}}{{end}}" 2>/dev/null || true
}

random_token() {
  # random_token BYTES: hex from the OS's CSPRNG.
  python3 -c 'import secrets, sys; print(secrets.token_hex(int(sys.argv[1])))' "$1"
}

resolve_s3_credentials() {
  # MinIO's root keys: kept from an earlier run (minio/minio-root), else taken from S3_ACCESS_KEY /
  # S3_SECRET_KEY, else generated. They only ever travel in Secrets and through process substitution.
  local existing_user existing_password
  existing_user="$(secret_value minio minio-root MINIO_ROOT_USER)"
  existing_password="$(secret_value minio minio-root MINIO_ROOT_PASSWORD)"
  if [[ -n "${existing_user}" && -n "${existing_password}" ]]; then
    if [[ -n "${S3_ACCESS_KEY:-}" && "${S3_ACCESS_KEY}" != "${existing_user}" ]]; then
      warn "S3_ACCESS_KEY differs from the keys MinIO was created with; keeping the existing minio/minio-root"
    fi
    info "MinIO keys: reusing Secret minio/minio-root"
    S3_ACCESS_KEY="${existing_user}"
    S3_SECRET_KEY="${existing_password}"
  elif [[ -n "${S3_ACCESS_KEY:-}" && -n "${S3_SECRET_KEY:-}" ]]; then
    ((${#S3_SECRET_KEY} >= 8)) || die "S3_SECRET_KEY must have at least 8 characters (a MinIO rule)"
    info "MinIO keys: from S3_ACCESS_KEY / S3_SECRET_KEY"
  else
    S3_ACCESS_KEY="admin-$(random_token 4)"
    S3_SECRET_KEY="$(random_token 24)"
    info "MinIO keys: generated (Secret minio/minio-root)"
  fi
}

apply_secret() {
  # apply_secret NAMESPACE NAME ID_KEY SECRET_KEY: an Opaque Secret with the S3 keys under those key names.
  local namespace="$1" name="$2" id_key="$3" secret_key="$4"
  k -n "${namespace}" create secret generic "${name}" \
    --from-env-file=<(printf '%s=%s\n%s=%s\n' "${id_key}" "${S3_ACCESS_KEY}" "${secret_key}" "${S3_SECRET_KEY}") \
    --dry-run=client -o yaml | k apply -f -
  k -n "${namespace}" label secret "${name}" --overwrite app.kubernetes.io/part-of=chicago-arrest >/dev/null
}

apply_with_image() {
  # apply_with_image FILE IMAGE: apply a manifest with the project image replaced by IMAGE, in one
  # apply (an apply followed by a patch would restart the pods twice).
  local file="$1" image="$2" manifest from to
  manifest="$(<"${file}")"
  from="image: ${DEFAULT_IMAGE}"
  to="image: ${image}"
  manifest="${manifest//"${from}"/${to}}"
  printf '%s\n' "${manifest}" | k apply -f -
}

install_minio() {
  log "MinIO (${MINIO_IMAGE}) with buckets ${BUCKETS}"
  k create namespace minio --dry-run=client -o yaml | k apply -f -
  resolve_s3_credentials
  apply_secret minio minio-root MINIO_ROOT_USER MINIO_ROOT_PASSWORD
  k apply -f "${PLATFORM}/minio.yaml"
  k -n minio rollout status deployment/minio --timeout="${WAIT_TIMEOUT}"
  # A Job's pod template is immutable: replace the finished Job, so a new IMAGE works on re-runs.
  k -n minio delete job minio-buckets --ignore-not-found
  apply_with_image "${PLATFORM}/minio-buckets.yaml" "${IMAGE}"
  k -n minio wait --for=condition=complete job/minio-buckets --timeout="${WAIT_TIMEOUT}" ||
    die "the bucket Job did not complete: kubectl --context ${CONTEXT} -n minio logs job/minio-buckets"
}

install_model_namespace() {
  log "Namespace models: S3 ServiceAccount + Secret for KServe's storage-initializer, deployer RBAC"
  k apply -f "${PLATFORM}/models.yaml"
  apply_secret models kserve-s3 AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
  # How the storage-initializer reaches MinIO: plain http (it defaults to https without a scheme).
  k -n models annotate secret kserve-s3 --overwrite \
    "serving.kserve.io/s3-endpoint=${S3_ENDPOINT}" \
    serving.kserve.io/s3-usehttps=0 \
    serving.kserve.io/s3-verifyssl=0 \
    "serving.kserve.io/s3-region=${S3_REGION}" >/dev/null
}

apply_pipeline_config() {
  # What every pipeline step reads (pipelines/training.py: CONFIG_MAP / SECRET): the object store of the
  # data and of the published models, the in-cluster MLflow server, and what the deploy step deploys.
  log "Pipeline step configuration: ConfigMap chicago-arrest-config + Secret chicago-arrest-s3 (kubeflow)"
  k -n kubeflow create configmap chicago-arrest-config \
    --from-literal=ARREST_STORE_BACKEND=s3 \
    "--from-literal=ARREST_S3_ENDPOINT=${S3_ENDPOINT}" \
    "--from-literal=ARREST_S3_BUCKET=${DATA_BUCKET}" \
    --from-literal=ARREST_S3_SECURE=false \
    "--from-literal=ARREST_MODELS_BUCKET=${MODELS_BUCKET}" \
    "--from-literal=ARREST_SERVING_IMAGE=${IMAGE}" \
    --from-literal=ARREST_SERVING_PROFILE=kind \
    "--from-literal=MLFLOW_TRACKING_URI=${MLFLOW_IN_CLUSTER_URI}" \
    --dry-run=client -o yaml | k apply -f -
  apply_secret kubeflow chicago-arrest-s3 ARREST_S3_ACCESS_KEY ARREST_S3_SECRET_KEY
}

install_mlflow() {
  log "MLflow ${MLFLOW_VERSION} (image ${MLFLOW_IMAGE}; artifacts proxied to s3://${MLFLOW_BUCKET}/artifacts)"
  k create namespace mlflow --dry-run=client -o yaml | k apply -f -
  apply_secret mlflow mlflow-s3 AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
  apply_with_image "${PLATFORM}/mlflow.yaml" "${MLFLOW_IMAGE}"
  k -n mlflow rollout status deployment/mlflow --timeout="${WAIT_TIMEOUT}"
}

summary() {
  cat <<EOF

==> Cluster ${CLUSTER_NAME} is ready (kubectl context ${CONTEXT}).

  KFP UI and API   http://localhost:3000        kfp.Client(host="http://localhost:3000")
  MLflow           http://localhost:5000        export MLFLOW_TRACKING_URI=http://localhost:5000
  Kourier ingress  http://localhost:8180        send a Host header, e.g. once the model is deployed:
      HOST=\$(kubectl --context ${CONTEXT} -n models get isvc arrest-predictor -o jsonpath='{.status.url}' | cut -d/ -f3)
      curl -H "Host: \${HOST}" http://localhost:8180/v2/models/arrest-predictor/ready
  MinIO            S3 API localhost:9000, console http://localhost:9001 (buckets ${BUCKETS})
                   keys: kubectl --context ${CONTEXT} -n minio get secret minio-root -o yaml

  If a host port is taken, port-forward instead:
      kubectl --context ${CONTEXT} -n kubeflow port-forward svc/ml-pipeline-ui 3000:80
      kubectl --context ${CONTEXT} -n mlflow port-forward svc/mlflow 5000:5000
      kubectl --context ${CONTEXT} -n kourier-system port-forward svc/kourier 8180:80
      kubectl --context ${CONTEXT} -n minio port-forward svc/minio 9000:9000 9001:9001

  Inside the cluster: MLflow http://mlflow.mlflow.svc.cluster.local:5000, S3 http://${S3_ENDPOINT}
  Next: KFP_HOST=http://localhost:3000 make pipeline-run   then   make status TARGET=cluster
EOF
}

main() {
  preflight
  create_cluster
  load_images
  install_cert_manager
  install_kfp
  install_knative
  install_kserve
  install_minio
  install_model_namespace
  apply_pipeline_config
  install_mlflow
  summary
}

main "$@"
