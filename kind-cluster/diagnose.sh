#!/usr/bin/env bash
# Collect what a person needs when something on the kind cluster is not ready, into ONE archive
# (`make kind-diagnose`; up.sh and smoke.sh run it on failure and print where it is). Read-only: it changes nothing.
#
# The archive (a .tar.gz) holds:
#   cluster.json                    the record of make kind-up (where KFP, MLflow, Kourier, MinIO are)
#   nodes.txt                       nodes, their conditions and allocated resources (kubectl describe nodes)
#   <namespace>/resources.txt       every object of each project namespace (get all -o wide)
#   <namespace>/pods.yaml           the pods in full (conditions, container states)
#   <namespace>/events.txt          events, oldest first
#   <namespace>/logs/<pod>.log      logs of each pod that is not ready (all containers, and the previous ones)
#   models/inferenceservice.yaml    the InferenceService, and models/revisions.yaml its Knative revisions
#   models/describe.txt             kubectl describe isvc, ksvc, revisions
#   kfp-runs.txt                    the last KFP runs (state, error) and kubeflow's Argo workflows
#   commands.txt                    every command run and its exit status (a failed command does not stop it)
#
# Usage:   make kind-diagnose      (or: CLUSTER_NAME=... PYTHON=.venv/bin/python kind-cluster/diagnose.sh)
# Environment: CLUSTER_NAME (default chicago-arrest), PYTHON (the project's Python, for the KFP runs; optional),
#   DIAGNOSE_DIR (default <data dir>/diagnostics), ARREST_DATA_DIR (default .data), LOG_TAIL lines per log (2000).
# Prints the archive's path as its last line: `diagnostics: <path>`.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${HERE}/.." && pwd)"
CLUSTER_NAME="${CLUSTER_NAME:-chicago-arrest}"
CONTEXT="kind-${CLUSTER_NAME}"
PYTHON="${PYTHON:-${REPO_ROOT}/.venv/bin/python}"
DATA_DIR="${ARREST_DATA_DIR:-${REPO_ROOT}/.data}"
DIAGNOSE_DIR="${DIAGNOSE_DIR:-${DATA_DIR}/diagnostics}"
LOG_TAIL="${LOG_TAIL:-2000}"
# Every namespace the project uses (up.sh installs them; models holds the InferenceService).
NAMESPACES="cert-manager kubeflow knative-serving kourier-system kserve minio mlflow models"

command -v kubectl >/dev/null 2>&1 || {
  printf 'ERROR: kubectl is not on PATH\n' >&2
  exit 1
}

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
name="kind-${CLUSTER_NAME}-${stamp}"
work="$(mktemp -d "${TMPDIR:-/tmp}/diagnose.XXXXXX")"
trap 'rm -rf "${work}"' EXIT
out="${work}/${name}"
mkdir -p "${out}" "${DIAGNOSE_DIR}"

k() { kubectl --context "${CONTEXT}" "$@"; }

# run FILE COMMAND...: COMMAND's output (stdout and stderr) into FILE; its status into commands.txt.
run() {
  local file="${out}/$1" status=0
  shift
  mkdir -p "$(dirname "${file}")"
  "$@" >>"${file}" 2>&1 || status=$?
  printf '%s\t%s\t%s\n' "${status}" "${file#"${out}/"}" "$*" >>"${out}/commands.txt"
}

not_ready_pods() {
  # not_ready_pods NAMESPACE: names of pods that are not Succeeded and have a container that is not ready.
  k -n "$1" get pods -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.status.phase}{" "}{.status.containerStatuses[*].ready}{"\n"}{end}' 2>/dev/null |
    awk '$2 != "Succeeded" && ($2 != "Running" || / false/ || NF < 3) {print $1}' || true
}

printf '==> Diagnostics of kind cluster %s (context %s)\n' "${CLUSTER_NAME}" "${CONTEXT}"
if [[ -f "${DATA_DIR}/cluster.json" ]]; then
  cp "${DATA_DIR}/cluster.json" "${out}/cluster.json"
fi
run nodes.txt k get nodes -o wide
run nodes.txt k describe nodes
for namespace in ${NAMESPACES}; do
  run "${namespace}/resources.txt" k -n "${namespace}" get all -o wide
  run "${namespace}/pods.yaml" k -n "${namespace}" get pods -o yaml
  run "${namespace}/events.txt" k -n "${namespace}" get events --sort-by=.lastTimestamp
  for pod in $(not_ready_pods "${namespace}"); do
    run "${namespace}/logs/${pod}.log" k -n "${namespace}" logs "${pod}" --all-containers --prefix --tail="${LOG_TAIL}"
    run "${namespace}/logs/${pod}.previous.log" k -n "${namespace}" logs "${pod}" --all-containers --prefix \
      --previous --tail="${LOG_TAIL}"
  done
done
run models/inferenceservice.yaml k -n models get inferenceservices.serving.kserve.io -o yaml
run models/revisions.yaml k -n models get revisions.serving.knative.dev -o yaml
run models/describe.txt k -n models describe inferenceservices.serving.kserve.io
run models/describe.txt k -n models describe services.serving.knative.dev
run models/describe.txt k -n models describe revisions.serving.knative.dev
run kfp-runs.txt k -n kubeflow get workflows.argoproj.io -o wide --sort-by=.metadata.creationTimestamp
if [[ -x "${PYTHON}" ]]; then
  run kfp-runs.txt "${PYTHON}" "${HERE}/smoke.py" runs --last 20
else
  printf 'skipped\tkfp-runs.txt\t%s is not executable: the KFP API was not asked\n' "${PYTHON}" >>"${out}/commands.txt"
fi

archive="${DIAGNOSE_DIR}/${name}.tar.gz"
tar -czf "${archive}" -C "${work}" "${name}"
failed="$(awk -F'\t' '$1 != "0" {n++} END {print n + 0}' "${out}/commands.txt")"
printf '    %s commands, %s of them failed (see commands.txt in the archive)\n' \
  "$(wc -l <"${out}/commands.txt" | tr -d ' ')" "${failed}"
printf 'diagnostics: %s\n' "${archive}"
