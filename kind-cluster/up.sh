#!/usr/bin/env bash
# Bring up the local cluster of chicago-arrest on kind: cert-manager, Kubeflow Pipelines (platform-agnostic,
# with its SeaweedFS object store), Knative Serving + Kourier, KServe (Knative mode), the `models` namespace
# with its S3 credentials, NetworkPolicy, RBAC and ServingRuntime, and an MLflow tracking server.
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
#                     keys for the model and MLflow S3 Secrets; default: read from KFP's own Secret
#                     kubeflow/mlpipeline-minio-artifact, else KFP's well-known local defaults
#   WAIT_TIMEOUT      per-wait timeout (default 600s); KFP_WAIT_TIMEOUT for KFP's deployments (default 900s)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${HERE}/.." && pwd)"
MANIFESTS="${REPO_ROOT}/manifests"
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

# In-cluster S3 endpoint of KFP >= 2.15 (SeaweedFS; the MinIO Service `minio-service` no longer exists).
S3_ENDPOINT="seaweedfs.kubeflow:9000"
S3_REGION="us-east-1"
ARREST_BUCKET="${ARREST_BUCKET:-chicago-crime}"  # raw/ and curated/ data of the pipeline (created on first use)
# NodePorts that kind-config.yaml maps to localhost (3000, 8180; MLflow's 30500 is set in manifests/mlflow.yaml).
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
  info "Docker engine: ${ncpu} CPUs, ${gib} GiB memory"
  if ((ncpu < 6 || gib < 11)); then
    warn "Docker has ${ncpu} CPUs / ${gib} GiB: 8 CPUs / 16 GB are recommended, 6 / 12 GB is the minimum"
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
  [[ -f "${MANIFESTS}/servingruntime.yaml" ]] || die "${MANIFESTS} is missing: run from a full checkout"
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

kfp_secret_value() {
  # Prints one key of KFP's object-store Secret, or nothing.
  k -n kubeflow get secret mlpipeline-minio-artifact \
    -o "go-template={{with index .data \"$1\"}}{{. | base64decode}}{{end}}" 2>/dev/null || true
}

resolve_s3_credentials() {
  S3_ACCESS_KEY="${S3_ACCESS_KEY:-$(kfp_secret_value accesskey)}"
  S3_SECRET_KEY="${S3_SECRET_KEY:-$(kfp_secret_value secretkey)}"
  if [[ -z "${S3_ACCESS_KEY}" || -z "${S3_SECRET_KEY}" ]]; then
    warn "could not read kubeflow/mlpipeline-minio-artifact: using KFP's well-known local defaults"
    S3_ACCESS_KEY="${S3_ACCESS_KEY:-minio}"
    S3_SECRET_KEY="${S3_SECRET_KEY:-minio123}"
  fi
}

apply_s3_secret() {
  # apply_s3_secret NAMESPACE NAME: an Opaque Secret with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
  # The values go through a process substitution, so they never appear on a command line.
  local namespace="$1" name="$2"
  k -n "${namespace}" create secret generic "${name}" \
    --from-env-file=<(printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "${S3_ACCESS_KEY}" "${S3_SECRET_KEY}") \
    --dry-run=client -o yaml | k apply -f -
  k -n "${namespace}" label secret "${name}" --overwrite app.kubernetes.io/part-of=chicago-arrest >/dev/null
}

apply_with_image() {
  # apply_with_image FILE IMAGE: apply a generated manifest with its default image replaced by IMAGE, in one
  # apply (an apply followed by a patch would create an extra Knative revision each run).
  local file="$1" image="$2" default_image manifest from to
  default_image="$(awk '/^ *image: /{print $2; exit}' "${file}")"
  manifest="$(<"${file}")"
  if [[ -n "${default_image}" ]]; then
    from="image: ${default_image}"
    to="image: ${image}"
    manifest="${manifest//"${from}"/${to}}"
  fi
  printf '%s\n' "${manifest}" | k apply -f -
}

apply_project_objects() {
  log "Namespace models: S3 Secret + ServiceAccount, NetworkPolicy, RBAC, ServingRuntime (image ${IMAGE})"
  k apply -f "${MANIFESTS}/namespace.yaml"
  apply_s3_secret models kserve-s3
  # How KServe's storage-initializer reaches SeaweedFS: plain http (it defaults to https without a scheme).
  k -n models annotate secret kserve-s3 --overwrite \
    "serving.kserve.io/s3-endpoint=${S3_ENDPOINT}" \
    serving.kserve.io/s3-usehttps=0 \
    serving.kserve.io/s3-verifyssl=0 \
    "serving.kserve.io/s3-region=${S3_REGION}" >/dev/null
  k apply -f "${MANIFESTS}/serviceaccount.yaml"
  k apply -f "${MANIFESTS}/networkpolicy.yaml"
  k apply -f "${MANIFESTS}/rbac.yaml"
  retry 5 10 apply_with_image "${MANIFESTS}/servingruntime.yaml" "${IMAGE}"
}

apply_pipeline_config() {
  # What every pipeline step reads (pipelines/training.py: CONFIG_MAP / SECRET): the object store that holds
  # raw/ and curated/ data, and the in-cluster MLflow server. Steps run as pipeline-runner in kubeflow.
  log "Pipeline step configuration: ConfigMap chicago-arrest-config + Secret chicago-arrest-s3 (kubeflow)"
  k -n kubeflow create configmap chicago-arrest-config \
    --from-literal=ARREST_STORE_BACKEND=s3 \
    "--from-literal=ARREST_S3_ENDPOINT=${S3_ENDPOINT}" \
    "--from-literal=ARREST_S3_BUCKET=${ARREST_BUCKET}" \
    --from-literal=ARREST_S3_SECURE=false \
    "--from-literal=MLFLOW_TRACKING_URI=http://mlflow.mlflow.svc.cluster.local:5000" \
    --dry-run=client -o yaml | k apply -f -
  k -n kubeflow create secret generic chicago-arrest-s3 \
    --from-env-file=<(printf 'ARREST_S3_ACCESS_KEY=%s\nARREST_S3_SECRET_KEY=%s\n' "${S3_ACCESS_KEY}" "${S3_SECRET_KEY}") \
    --dry-run=client -o yaml | k apply -f -
}

install_mlflow() {
  log "MLflow ${MLFLOW_VERSION} (image ${MLFLOW_IMAGE}; artifacts proxied to s3://mlpipeline/mlflow)"
  k create namespace mlflow --dry-run=client -o yaml | k apply -f -
  apply_s3_secret mlflow mlflow-s3
  apply_with_image "${MANIFESTS}/mlflow.yaml" "${MLFLOW_IMAGE}"
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
  S3 (SeaweedFS)   kubectl --context ${CONTEXT} -n kubeflow port-forward svc/seaweedfs 9000:9000
                   keys: kubectl --context ${CONTEXT} -n kubeflow get secret mlpipeline-minio-artifact -o yaml

  If a host port is taken, port-forward instead:
      kubectl --context ${CONTEXT} -n kubeflow port-forward svc/ml-pipeline-ui 3000:80
      kubectl --context ${CONTEXT} -n mlflow port-forward svc/mlflow 5000:5000
      kubectl --context ${CONTEXT} -n kourier-system port-forward svc/kourier 8180:80

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
  resolve_s3_credentials
  apply_project_objects
  apply_pipeline_config
  install_mlflow
  summary
}

main "$@"
