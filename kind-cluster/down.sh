#!/usr/bin/env bash
# Delete the kind cluster of chicago-arrest, with everything in it (KFP runs and artifacts, the MLflow
# registry, deployed models). Usage: make kind-down (or CLUSTER_NAME=... kind-cluster/down.sh).
# Re-run: safe; does nothing when the cluster does not exist. Docker images on the host are kept.
# Also removes <data dir>/cluster.json (written by up.sh) when it names this cluster, so the make targets go
# back to the local path.
set -euo pipefail

CLUSTER_NAME="${CLUSTER_NAME:-chicago-arrest}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RECORD="${ARREST_DATA_DIR:-${HERE}/../.data}/cluster.json"

command -v kind >/dev/null 2>&1 || {
  printf 'ERROR: kind is not on PATH\n' >&2
  exit 1
}

clusters="$(kind get clusters 2>/dev/null || true)"
if grep -qx "${CLUSTER_NAME}" <<<"${clusters}"; then
  printf '==> Deleting kind cluster %s\n' "${CLUSTER_NAME}"
  kind delete cluster --name "${CLUSTER_NAME}"
else
  printf '==> No kind cluster named %s: nothing to delete\n' "${CLUSTER_NAME}"
fi

if [[ -f "${RECORD}" ]] && grep -q "\"cluster_name\": \"${CLUSTER_NAME}\"" "${RECORD}"; then
  rm -f "${RECORD}"
  printf '==> Removed %s: make pipeline-run, status ... run locally again\n' "${RECORD}"
fi
