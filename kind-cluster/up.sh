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
# Re-run:  safe, also after a complete install. Every step is an apply, a guarded create or an idempotent
#          patch, and nothing it applies is checked by a webhook that it scales down (see install_kserve).
# Records: <data dir>/cluster.json (ARREST_DATA_DIR, default .data): where KFP, MLflow and Kourier are and the
#          kube context, so `make pipeline-run`, `make status` ... go to this cluster (chicago_arrest.core.targets).
#
# Environment (all optional):
#   CLUSTER_NAME      kind cluster name (default chicago-arrest; kubectl context kind-$CLUSTER_NAME)
#   IMAGE             project image to load into kind and run (default chicago-arrest:0.1.0)
#   CLUSTER_PROFILE   laptop (default: a Docker VM of 8 CPUs / 16 GB recommended, 6 / 12 GB the minimum) or
#                     small (a 4 vCPU / 16 GB hosted CI runner: the checks expect 4 CPUs / 14 GiB, and the
#                     pipelines compiled for this cluster request 250m CPU per train task instead of 1 CPU;
#                     recorded in cluster.json; see kind-cluster/README.md, "Small profile")
#   MLFLOW_IMAGE      image of the MLflow server (default: $IMAGE, which has mlflow and boto3 from uv.lock)
#   SKIP_IMAGE_LOAD   1: do not `kind load` the images (they must then be pullable by the node)
#   KEEP_LLMISVC      1: keep KServe's llmisvc controller running (default: scaled to 0, not needed here)
#   KEEP_KFP_MLFLOW_PLUGIN
#                     1: leave KFP 2.17's api-server MLflow plugin on (default: off, its endpoint does not exist)
#   KFP_HOST_PORT, KOURIER_HOST_PORT, MINIO_HOST_PORT, MINIO_CONSOLE_HOST_PORT, MLFLOW_HOST_PORT
#                     host ports on 127.0.0.1 (default 3000, 8180, 9000, 9001, 5000), checked before the cluster
#                     is created; they only apply when the cluster is created (kind cannot remap them later)
#   SKIP_PORT_CHECK   1: do not check that the host ports are free (e.g. with a remote DOCKER_HOST)
#   S3_ACCESS_KEY / S3_SECRET_KEY
#                     MinIO's root keys on the first run (default: generated); later runs keep the Secret
#                     minio/minio-root. Only MinIO and the bucket Job use them: each app (pipeline steps,
#                     MLflow, KServe's storage-initializer) gets its own MinIO user, keys in minio/minio-users.
#   WAIT_TIMEOUT      per-wait timeout (default 600s); KFP_WAIT_TIMEOUT for KFP's deployments (default 900s)
#   ARREST_DATA_DIR   where cluster.json is written (default: .data in the repository)
#   SKIP_DIAGNOSE     1: on a failure once the cluster exists, do not write the diagnostics archive
#                     (kind-cluster/diagnose.sh, `make kind-diagnose`; its path is the last line printed)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${HERE}/.." && pwd)"
PLATFORM="${REPO_ROOT}/manifests/platform"
# shellcheck source=versions.env
source "${HERE}/versions.env"

CLUSTER_NAME="${CLUSTER_NAME:-chicago-arrest}"
CLUSTER_PROFILE="${CLUSTER_PROFILE:-laptop}"
IMAGE="${IMAGE:-chicago-arrest:0.1.0}"
MLFLOW_IMAGE="${MLFLOW_IMAGE:-${IMAGE}}"
SKIP_IMAGE_LOAD="${SKIP_IMAGE_LOAD:-0}"
KEEP_LLMISVC="${KEEP_LLMISVC:-0}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-600s}"
KFP_WAIT_TIMEOUT="${KFP_WAIT_TIMEOUT:-900s}"
KEEP_KFP_MLFLOW_PLUGIN="${KEEP_KFP_MLFLOW_PLUGIN:-0}"
SKIP_PORT_CHECK="${SKIP_PORT_CHECK:-0}"
SKIP_DIAGNOSE="${SKIP_DIAGNOSE:-0}"
# Seconds between polls (the Knative webhook's endpoints).
POLL_SECONDS="${POLL_SECONDS:-3}"
CONTEXT="kind-${CLUSTER_NAME}"
DATA_DIR="${ARREST_DATA_DIR:-${REPO_ROOT}/.data}"
# Host ports (127.0.0.1) of kind-config.yaml, which holds the defaults; up.sh renders it with these.
KFP_HOST_PORT="${KFP_HOST_PORT:-3000}"
KOURIER_HOST_PORT="${KOURIER_HOST_PORT:-8180}"
MINIO_HOST_PORT="${MINIO_HOST_PORT:-9000}"
MINIO_CONSOLE_HOST_PORT="${MINIO_CONSOLE_HOST_PORT:-9001}"
MLFLOW_HOST_PORT="${MLFLOW_HOST_PORT:-5000}"
# The apps with a MinIO user of their own (chicago_arrest.cli.minio_users, run by the bucket Job).
MINIO_APPS="steps mlflow kserve sink"

# The project's object store: MinIO in namespace minio (manifests/platform and chicago_arrest.core.names; a test
# checks these agree). KFP keeps its own SeaweedFS for pipeline artifacts.
S3_ENDPOINT="minio.minio.svc.cluster.local:9000"
S3_REGION="us-east-1"
DATA_BUCKET="chicago-crime"
MLFLOW_BUCKET="mlflow"
MODELS_BUCKET="models"
SERVED_BUCKET="inference-logs"
BUCKETS="${DATA_BUCKET}, ${MLFLOW_BUCKET}, ${MODELS_BUCKET}, ${SERVED_BUCKET}"
MLFLOW_IN_CLUSTER_URI="http://mlflow.mlflow.svc.cluster.local:5000"
# Resources of the predictor that the deploy step applies (chicago_arrest.release.kserve: manifests/overlays/kind).
SERVING_PROFILE="kind"
# The image named in manifests/platform, replaced by IMAGE when applying.
DEFAULT_IMAGE="chicago-arrest:0.1.0"
# NodePorts that kind-config.yaml maps to localhost (3000, 8180; MinIO's and MLflow's are in manifests/platform).
KFP_UI_NODE_PORT=30080
KOURIER_NODE_PORT=31080
MINIO_NODE_PORT=30900
MINIO_CONSOLE_NODE_PORT=30901
MLFLOW_NODE_PORT=30500

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

# Temporary files removed on exit, whatever happens.
TEMP_FILES=()

on_exit() {
  # On a failure once the cluster exists: one archive of what is not ready (kind-cluster/diagnose.sh).
  local status=$?
  rm -f ${TEMP_FILES[@]+"${TEMP_FILES[@]}"}
  if ((status != 0)) && [[ "${SKIP_DIAGNOSE}" != "1" ]] && [[ "${CLUSTER_CREATED:-0}" == "1" ]]; then
    printf '\n==> up.sh failed (exit %d): collecting diagnostics (SKIP_DIAGNOSE=1 skips this)\n' "${status}" >&2
    local line
    line="$(CLUSTER_NAME="${CLUSTER_NAME}" ARREST_DATA_DIR="${DATA_DIR}" "${HERE}/diagnose.sh" 2>&1 | tail -n 1)" || true
    if [[ "${line}" == diagnostics:* ]]; then
      printf '%s\n' "${line}" >&2
    else
      printf 'diagnostics: not written (%s); try make kind-diagnose\n' "${line}" >&2
    fi
  fi
  return "${status}"
}
trap on_exit EXIT

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

seconds_of() {
  # seconds_of DURATION: "600s" / "10m" / "600" -> 600 (kubectl's timeouts, for the loops of this script).
  local value="$1"
  case "${value}" in
    *m) echo $((${value%m} * 60)) ;;
    *s) echo "${value%s}" ;;
    *) echo "${value}" ;;
  esac
}

# --- host ports ------------------------------------------------------------------------------------------------

# "NAME HOST_PORT CONTAINER_PORT VARIABLE" of every port kind-config.yaml maps (the committed file has the defaults).
port_table() {
  printf '%s\n' \
    "KFP-UI ${KFP_HOST_PORT} ${KFP_UI_NODE_PORT} KFP_HOST_PORT" \
    "Kourier ${KOURIER_HOST_PORT} ${KOURIER_NODE_PORT} KOURIER_HOST_PORT" \
    "MinIO-S3 ${MINIO_HOST_PORT} ${MINIO_NODE_PORT} MINIO_HOST_PORT" \
    "MinIO-console ${MINIO_CONSOLE_HOST_PORT} ${MINIO_CONSOLE_NODE_PORT} MINIO_CONSOLE_HOST_PORT" \
    "MLflow ${MLFLOW_HOST_PORT} ${MLFLOW_NODE_PORT} MLFLOW_HOST_PORT"
}

port_in_use() {
  # port_in_use PORT: exit 0 when 127.0.0.1:PORT cannot be bound. On Linux SO_REUSEADDR, as docker-proxy
  # sets it, ignores TIME_WAIT leftovers; not on macOS, where it would hide AirPlay's *:5000.
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
if sys.platform.startswith("linux"):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
finally:
    s.close()
sys.exit(1)
PY
}

port_holder() {
  # port_holder PORT: the process listening on PORT, when lsof (macOS) or ss (Linux) can tell.
  local port="$1" who=""
  if command -v lsof >/dev/null 2>&1; then
    who="$(lsof -nP -iTCP:"${port}" -sTCP:LISTEN 2>/dev/null | awk 'NR == 2 {print $1 " (pid " $2 ")"}')"
  elif command -v ss >/dev/null 2>&1; then
    who="$(ss -ltnpH "sport = :${port}" 2>/dev/null | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 (pid \2)/p' | head -n 1)"
  fi
  printf '%s' "${who}"
}

check_host_ports() {
  # Before anything is created: every host port valid, distinct and free. kind would fail half-way otherwise.
  log "Checking host ports on 127.0.0.1"
  local name port container variable taken=0 seen=" " holder
  while read -r name port container variable; do
    if ! [[ "${port}" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
      die "${variable}=${port} is not a port number (1-65535)"
    fi
    [[ "${seen}" != *" ${port} "* ]] || die "${variable}=${port}: that host port is given twice"
    seen="${seen}${port} "
  done < <(port_table)
  if [[ "${SKIP_PORT_CHECK}" == "1" ]]; then
    info "SKIP_PORT_CHECK=1: not checking"
    return
  fi
  if [[ "${DOCKER_HOST:-}" == tcp://* || "${DOCKER_HOST:-}" == ssh://* ]]; then
    warn "DOCKER_HOST=${DOCKER_HOST}: the ports are bound on that host, not checked here"
    return
  fi
  while read -r name port container variable; do
    if port_in_use "${port}"; then
      holder="$(port_holder "${port}")"
      warn "port ${port} (${name}, NodePort ${container}) is taken on 127.0.0.1${holder:+ by ${holder}}: free it, or" \
        "choose another: ${variable}=<port> make kind-up"
      taken=$((taken + 1))
    else
      info "${port} free (${name})"
    fi
  done < <(port_table)
  ((taken == 0)) || die "${taken} host port(s) taken (listed above); nothing was created"
}

render_kind_config() {
  # kind-config.yaml with the chosen host ports, in a temporary file (the committed file keeps the defaults).
  local out="$1" name port container variable count
  cp "${HERE}/kind-config.yaml" "${out}"
  while read -r name port container variable; do
    count="$(grep -c "containerPort: ${container}\$" "${out}" || true)"
    ((count == 1)) || die "kind-config.yaml maps NodePort ${container} ${count} times (expected once)"
    # The hostPort line follows its containerPort line.
    sed -i.bak "/containerPort: ${container}\$/{n;s/hostPort: [0-9]*\$/hostPort: ${port}/;}" "${out}"
    grep -q "hostPort: ${port}\$" "${out}" || die "could not set hostPort ${port} (${variable}) in kind-config.yaml"
  done < <(port_table)
  rm -f "${out}.bak"
}

actual_host_port() {
  # actual_host_port NODE_PORT FALLBACK: the host port Docker maps to NODE_PORT of the node (a re-run keeps the
  # cluster's ports whatever the variables say now), else FALLBACK.
  local mapped
  mapped="$(docker port "${CLUSTER_NAME}-control-plane" "$1/tcp" 2>/dev/null | head -n 1 || true)"
  if [[ "${mapped}" =~ :([0-9]+)$ ]]; then
    echo "${BASH_REMATCH[1]}"
  else
    echo "$2"
  fi
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

  # What the profile needs (kind-cluster/README.md): laptop 8 CPUs / 16 GB recommended, 6 / 12 GB (11 GiB as
  # Docker reports it) the minimum; small: a 4 vCPU / 16 GB runner (about 15 GiB reported).
  local ncpu mem_bytes gib min_cpu min_gib wanted
  case "${CLUSTER_PROFILE}" in
    laptop) min_cpu=6 min_gib=11 wanted="8 CPUs / 16 GB are recommended, 6 / 12 GB is the minimum" ;;
    small) min_cpu=4 min_gib=14 wanted="the small profile needs 4 CPUs / 16 GB (CLUSTER_PROFILE=small)" ;;
    *) die "CLUSTER_PROFILE=${CLUSTER_PROFILE} is not one of laptop, small" ;;
  esac
  ncpu="$(docker info --format '{{.NCPU}}' 2>/dev/null || true)"
  mem_bytes="$(docker info --format '{{.MemTotal}}' 2>/dev/null || true)"
  [[ "${ncpu}" =~ ^[0-9]+$ ]] || ncpu=0
  [[ "${mem_bytes}" =~ ^[0-9]+$ ]] || mem_bytes=0
  gib=$((mem_bytes / 1024 / 1024 / 1024))
  info "Docker engine: ${ncpu} CPUs, ${gib} GiB memory (profile ${CLUSTER_PROFILE}: ${wanted})"
  if ((ncpu < min_cpu || gib < min_gib)); then
    warn "Docker has ${ncpu} CPUs / ${gib} GiB: ${wanted}"
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
    info "already exists: reusing it (its host ports stay as they were created)"
  else
    check_host_ports
    local config
    config="$(mktemp "${TMPDIR:-/tmp}/kind-config.XXXXXX")"
    TEMP_FILES+=("${config}")
    render_kind_config "${config}"
    CLUSTER_CREATED=1
    kind create cluster --name "${CLUSTER_NAME}" --image "${KIND_NODE_IMAGE}" --config "${config}" --wait 180s
  fi
  CLUSTER_CREATED=1
  kind export kubeconfig --name "${CLUSTER_NAME}" >/dev/null
  k wait --for=condition=Ready node --all --timeout="${WAIT_TIMEOUT}"
  KFP_HOST_PORT="$(actual_host_port "${KFP_UI_NODE_PORT}" "${KFP_HOST_PORT}")"
  KOURIER_HOST_PORT="$(actual_host_port "${KOURIER_NODE_PORT}" "${KOURIER_HOST_PORT}")"
  MINIO_HOST_PORT="$(actual_host_port "${MINIO_NODE_PORT}" "${MINIO_HOST_PORT}")"
  MINIO_CONSOLE_HOST_PORT="$(actual_host_port "${MINIO_CONSOLE_NODE_PORT}" "${MINIO_CONSOLE_HOST_PORT}")"
  MLFLOW_HOST_PORT="$(actual_host_port "${MLFLOW_NODE_PORT}" "${MLFLOW_HOST_PORT}")"
}

load_images() {
  if [[ "${SKIP_IMAGE_LOAD}" == "1" ]]; then
    info "SKIP_IMAGE_LOAD=1: not loading ${IMAGE} into kind"
    return
  fi
  log "Loading ${IMAGE} into the kind node (about 1.5 GB; skipped if already there)"
  # kind load docker-image, with the image-archive fallback for kind#3795 (Docker's containerd image store).
  "${HERE}/load-image.sh" "${IMAGE}" "${CLUSTER_NAME}"
  if [[ "${MLFLOW_IMAGE}" != "${IMAGE}" ]] && docker image inspect "${MLFLOW_IMAGE}" >/dev/null 2>&1; then
    "${HERE}/load-image.sh" "${MLFLOW_IMAGE}" "${CLUSTER_NAME}"
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
  disable_kfp_mlflow_plugin
  info "waiting for every KFP deployment (first image pulls take minutes; ml-pipeline restarts until MySQL is up)"
  k -n kubeflow wait --for=condition=Available deployment --all --timeout="${KFP_WAIT_TIMEOUT}"
  # The UI (which also proxies the KFP API for kfp.Client) on localhost:3000 through kind-config.yaml.
  k -n kubeflow patch service ml-pipeline-ui \
    -p "{\"spec\":{\"type\":\"NodePort\",\"ports\":[{\"port\":80,\"nodePort\":${KFP_UI_NODE_PORT}}]}}"
}

disable_kfp_mlflow_plugin() {
  # KFP 2.17.0's api-server image ships config.json with plugins.mlflow pointing at
  # https://mlflow.opendatahub.svc.cluster.local:8443 (kubeflow/pipelines@2.17.0
  # backend/src/apiserver/config/config.json); the plugin is on whenever that key is set, and no env var
  # unsets it. Mount the same file without `plugins` over /config/config.json (kfp-apiserver-config.json).
  # A strategic-merge patch survives later `kubectl apply -k` re-runs; the hash annotation rolls the pod
  # when the file changes (a subPath mount is not refreshed).
  if [[ "${KEEP_KFP_MLFLOW_PLUGIN}" == "1" ]]; then
    info "KEEP_KFP_MLFLOW_PLUGIN=1: KFP's MLflow plugin stays on (runs show PLUGIN_FAILED for it)"
    return
  fi
  local file="${HERE}/kfp-apiserver-config.json" digest
  digest="$(python3 -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest()[:16])' "${file}")"
  info "KFP api-server: MLflow plugin off (ConfigMap ml-pipeline-apiserver-config over /config/config.json)"
  k -n kubeflow create configmap ml-pipeline-apiserver-config "--from-file=config.json=${file}" \
    --dry-run=client -o yaml | k apply -f -
  local volume mount patch
  volume='{"name":"apiserver-config","configMap":{"name":"ml-pipeline-apiserver-config"}}'
  mount='{"name":"apiserver-config","mountPath":"/config/config.json","subPath":"config.json","readOnly":true}'
  patch="{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"chicago-arrest/apiserver-config\":\"${digest}\"}},"
  patch+="\"spec\":{\"volumes\":[${volume}],\"containers\":[{\"name\":\"ml-pipeline-api-server\",\"volumeMounts\":[${mount}]}]}}}}"
  k -n kubeflow patch deployment ml-pipeline --type strategic -p "${patch}"
}

wait_for_knative_webhook() {
  # Knative's config webhook (failurePolicy Fail) validates the ConfigMaps patched next: wait until its
  # Deployment is Available AND its Service has a ready endpoint (kn-plugin-quickstart#611: pods Ready alone is
  # not enough on kind); the patches are retried as well (EOF / x509 while it reconciles its certificate).
  k -n knative-serving wait --for=condition=Available deployment/webhook --timeout="${WAIT_TIMEOUT}"
  local deadline addresses
  deadline=$((SECONDS + $(seconds_of "${WAIT_TIMEOUT}")))
  while :; do
    addresses="$(k -n knative-serving get endpointslices -l kubernetes.io/service-name=webhook \
      -o jsonpath='{.items[*].endpoints[?(@.conditions.ready==true)].addresses[*]}' 2>/dev/null || true)"
    if [[ -n "${addresses// /}" ]]; then
      info "Knative webhook endpoint ready: ${addresses}"
      return
    fi
    ((SECONDS < deadline)) ||
      die "Knative's webhook has no ready endpoint after ${WAIT_TIMEOUT}: kubectl --context ${CONTEXT} -n knative-serving get pods,endpointslices"
    sleep "${POLL_SECONDS}"
  done
}

install_knative() {
  log "Knative Serving ${KNATIVE_SERVING_VERSION} + Kourier ${KNATIVE_KOURIER_VERSION}"
  retry 3 10 k apply -f "${KNATIVE_URL}/serving-crds.yaml"
  k wait --for=condition=established --timeout=120s \
    crd/services.serving.knative.dev crd/revisions.serving.knative.dev crd/configurations.serving.knative.dev
  retry 5 10 k apply -f "${KNATIVE_URL}/serving-core.yaml"
  retry 5 10 k apply -f "${KOURIER_URL}"
  wait_for_knative_webhook
  # Kourier as the ingress; a domain the ingress serves (the default svc.cluster.local gives 404s);
  # no tag-to-digest resolution for images loaded with `kind load` or pulled from Docker Hub.
  retry 10 6 k -n knative-serving patch configmap/config-network --type merge \
    -p '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'
  retry 10 6 k -n knative-serving patch configmap/config-domain --type merge -p '{"data":{"example.com":""}}'
  retry 10 6 k -n knative-serving patch configmap/config-deployment --type merge \
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
  # Not applied: kserve-cluster-resources.yaml (14 ClusterServingRuntimes + 10 LLMInferenceServiceConfigs).
  # The predictor is a custom container (no runtime lookup: pkg/controller/v1beta1/inferenceservice/components/
  # predictor.go @v0.20.0), and the LLM configs are validated on every (server-side, so always PATCHing)
  # apply by llmisvc's webhooks with failurePolicy Fail: with llmisvc scaled to 0 below, a re-run could never
  # apply them again. KServe's own Knative-mode installer skips them too (ENABLE_LLMISVC=false).
  configure_kserve_ingress
  if k -n kserve get deployment llmisvc-controller-manager >/dev/null 2>&1; then
    if [[ "${KEEP_LLMISVC}" == "1" ]]; then
      info "KEEP_LLMISVC=1: llmisvc-controller-manager at 1 replica"
      k -n kserve scale deployment llmisvc-controller-manager --replicas=1
    else
      # Safe because nothing here creates, updates or deletes LLM objects (the only ones its webhooks check).
      info "scaling llmisvc-controller-manager to 0 (LLM serving is not used; KEEP_LLMISVC=1 keeps it)"
      k -n kserve scale deployment llmisvc-controller-manager --replicas=0
    fi
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

resolve_app_keys() {
  # Each app's MinIO user (MINIO_APPS): kept from an earlier run (Secret minio/minio-users), else generated.
  # Sets MINIO_<APP>_ACCESS_KEY / MINIO_<APP>_SECRET_KEY (the names chicago_arrest.cli.minio_users reads).
  local app upper access secret kept=0
  for app in ${MINIO_APPS}; do
    upper="$(printf '%s' "${app}" | tr '[:lower:]' '[:upper:]')"
    access="$(secret_value minio minio-users "MINIO_${upper}_ACCESS_KEY")"
    secret="$(secret_value minio minio-users "MINIO_${upper}_SECRET_KEY")"
    if [[ -n "${access}" && -n "${secret}" ]]; then
      kept=$((kept + 1))
    else
      access="${app}-$(random_token 4)"
      secret="$(random_token 24)"
    fi
    printf -v "MINIO_${upper}_ACCESS_KEY" '%s' "${access}"
    printf -v "MINIO_${upper}_SECRET_KEY" '%s' "${secret}"
  done
  info "MinIO app users (${MINIO_APPS}): ${kept} kept from Secret minio/minio-users, the others generated"
}

app_env_file() {
  # The MINIO_<APP>_ACCESS_KEY=... lines of Secret minio/minio-users.
  local app upper access_var secret_var
  for app in ${MINIO_APPS}; do
    upper="$(printf '%s' "${app}" | tr '[:lower:]' '[:upper:]')"
    access_var="MINIO_${upper}_ACCESS_KEY"
    secret_var="MINIO_${upper}_SECRET_KEY"
    printf '%s=%s\n%s=%s\n' "${access_var}" "${!access_var}" "${secret_var}" "${!secret_var}"
  done
}

apply_secret() {
  # apply_secret NAMESPACE NAME ID_KEY SECRET_KEY APP: an Opaque Secret with the S3 keys of APP (root: MinIO's
  # root keys, else the app's MinIO user) under those key names.
  local namespace="$1" name="$2" id_key="$3" secret_key="$4" app="$5" access secret upper
  if [[ "${app}" == root ]]; then
    access="${S3_ACCESS_KEY}"
    secret="${S3_SECRET_KEY}"
  else
    upper="$(printf '%s' "${app}" | tr '[:lower:]' '[:upper:]')"
    access="MINIO_${upper}_ACCESS_KEY"
    secret="MINIO_${upper}_SECRET_KEY"
    access="${!access}"
    secret="${!secret}"
  fi
  k -n "${namespace}" create secret generic "${name}" \
    --from-env-file=<(printf '%s=%s\n%s=%s\n' "${id_key}" "${access}" "${secret_key}" "${secret}") \
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
  resolve_app_keys
  apply_secret minio minio-root MINIO_ROOT_USER MINIO_ROOT_PASSWORD root
  k -n minio create secret generic minio-users --from-env-file=<(app_env_file) --dry-run=client -o yaml |
    k apply -f -
  k -n minio label secret minio-users --overwrite app.kubernetes.io/part-of=chicago-arrest >/dev/null
  k apply -f "${PLATFORM}/minio.yaml"
  k -n minio rollout status deployment/minio --timeout="${WAIT_TIMEOUT}"
  # A Job's pod template is immutable: replace the finished Job, so a new IMAGE works on re-runs.
  k -n minio delete job minio-buckets --ignore-not-found
  apply_with_image "${PLATFORM}/minio-buckets.yaml" "${IMAGE}"
  k -n minio wait --for=condition=complete job/minio-buckets --timeout="${WAIT_TIMEOUT}" ||
    die "the bucket Job did not complete: kubectl --context ${CONTEXT} -n minio logs job/minio-buckets --all-containers"
}

install_model_namespace() {
  log "Namespace models: S3 ServiceAccount + Secret for KServe's storage-initializer, deployer RBAC, payload sink"
  k apply -f "${PLATFORM}/models.yaml"
  apply_secret models kserve-s3 AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY kserve
  # How the storage-initializer reaches MinIO: plain http (it defaults to https without a scheme).
  k -n models annotate secret kserve-s3 --overwrite \
    "serving.kserve.io/s3-endpoint=${S3_ENDPOINT}" \
    serving.kserve.io/s3-usehttps=0 \
    serving.kserve.io/s3-verifyssl=0 \
    "serving.kserve.io/s3-region=${S3_REGION}" >/dev/null
  # The payload sink (KServe's logger posts to it; it writes to ${SERVED_BUCKET} with its own MinIO user).
  apply_secret models payload-sink-s3 ARREST_S3_ACCESS_KEY ARREST_S3_SECRET_KEY sink
  apply_with_image "${PLATFORM}/payload-sink.yaml" "${IMAGE}"
}

apply_pipeline_config() {
  # What every pipeline step reads (src/chicago_arrest/pipelines/training.py: CONFIG_MAP / SECRET): the object store of the
  # data and of the published models, the in-cluster MLflow server, and what the deploy step deploys.
  log "Pipeline step configuration: ConfigMap chicago-arrest-config + Secret chicago-arrest-s3 (kubeflow)"
  k -n kubeflow create configmap chicago-arrest-config \
    --from-literal=ARREST_STORE_BACKEND=s3 \
    "--from-literal=ARREST_S3_ENDPOINT=${S3_ENDPOINT}" \
    "--from-literal=ARREST_S3_BUCKET=${DATA_BUCKET}" \
    --from-literal=ARREST_S3_SECURE=false \
    "--from-literal=ARREST_MODELS_BUCKET=${MODELS_BUCKET}" \
    "--from-literal=ARREST_SERVING_IMAGE=${IMAGE}" \
    "--from-literal=ARREST_SERVING_PROFILE=${SERVING_PROFILE}" \
    "--from-literal=MLFLOW_TRACKING_URI=${MLFLOW_IN_CLUSTER_URI}" \
    --dry-run=client -o yaml | k apply -f -
  apply_secret kubeflow chicago-arrest-s3 ARREST_S3_ACCESS_KEY ARREST_S3_SECRET_KEY steps
}

install_mlflow() {
  log "MLflow ${MLFLOW_VERSION} (image ${MLFLOW_IMAGE}; artifacts proxied to s3://${MLFLOW_BUCKET}/artifacts)"
  k create namespace mlflow --dry-run=client -o yaml | k apply -f -
  local before
  before="$(secret_value mlflow mlflow-s3 AWS_ACCESS_KEY_ID)"
  apply_secret mlflow mlflow-s3 AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY mlflow
  apply_with_image "${PLATFORM}/mlflow.yaml" "${MLFLOW_IMAGE}"
  if [[ -n "${before}" && "${before}" != "${MINIO_MLFLOW_ACCESS_KEY}" ]]; then
    # The keys reach the pod as env vars, read at start: a running server keeps the old ones.
    info "mlflow-s3 now holds MLflow's own MinIO user: restarting the server"
    k -n mlflow rollout restart deployment/mlflow
  fi
  k -n mlflow rollout status deployment/mlflow --timeout="${WAIT_TIMEOUT}"
}

write_record() {
  # <data dir>/cluster.json: what chicago_arrest.core.targets reads, so the make targets go to this cluster.
  mkdir -p "${DATA_DIR}"
  python3 - "${DATA_DIR}/cluster.json" <<EOF
import datetime, json, sys
record = {
    "cluster_name": "${CLUSTER_NAME}",
    "context": "${CONTEXT}",
    "kfp_host": "http://localhost:${KFP_HOST_PORT}",
    "mlflow_uri": "http://localhost:${MLFLOW_HOST_PORT}",
    "ingress_url": "http://localhost:${KOURIER_HOST_PORT}",
    "s3_endpoint": "localhost:${MINIO_HOST_PORT}",
    "image": "${IMAGE}",
    "serving_profile": "${SERVING_PROFILE}",
    "cluster_profile": "${CLUSTER_PROFILE}",
    "recorded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
}
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump(record, out, indent=2)
    out.write("\\n")
EOF
  info "recorded in ${DATA_DIR}/cluster.json: make pipeline-run, status, canary ... now go to this cluster" \
    "(TARGET=local forces the local path; make kind-down removes the record)"
}

summary() {
  cat <<EOF

==> Cluster ${CLUSTER_NAME} is ready (kubectl context ${CONTEXT}).

  KFP UI and API   http://localhost:${KFP_HOST_PORT}        kfp.Client(host="http://localhost:${KFP_HOST_PORT}")
  MLflow           http://localhost:${MLFLOW_HOST_PORT}        export MLFLOW_TRACKING_URI=http://localhost:${MLFLOW_HOST_PORT}
  Kourier ingress  http://localhost:${KOURIER_HOST_PORT}        send a Host header, e.g. once the model is deployed:
      HOST=\$(kubectl --context ${CONTEXT} -n models get isvc arrest-predictor -o jsonpath='{.status.url}' | cut -d/ -f3)
      curl -H "Host: \${HOST}" http://localhost:${KOURIER_HOST_PORT}/v2/models/arrest-predictor/ready
  MinIO            S3 API localhost:${MINIO_HOST_PORT}, console http://localhost:${MINIO_CONSOLE_HOST_PORT} (buckets ${BUCKETS})
                   root keys: kubectl --context ${CONTEXT} -n minio get secret minio-root -o yaml
                   app users (steps, mlflow, kserve): Secret minio/minio-users

  If a host port is taken, port-forward instead:
      kubectl --context ${CONTEXT} -n kubeflow port-forward svc/ml-pipeline-ui ${KFP_HOST_PORT}:80
      kubectl --context ${CONTEXT} -n mlflow port-forward svc/mlflow ${MLFLOW_HOST_PORT}:5000
      kubectl --context ${CONTEXT} -n kourier-system port-forward svc/kourier ${KOURIER_HOST_PORT}:80
      kubectl --context ${CONTEXT} -n minio port-forward svc/minio ${MINIO_HOST_PORT}:9000 ${MINIO_CONSOLE_HOST_PORT}:9001

  Inside the cluster: MLflow ${MLFLOW_IN_CLUSTER_URI}, S3 http://${S3_ENDPOINT}
  Next: make pipeline-run   (goes to this cluster: ${DATA_DIR}/cluster.json)   then   make status, make kind-smoke
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
  write_record
  summary
}

main "$@"
