#!/usr/bin/env bash
# Delete the kind cluster of chicago-arrest, with everything in it (KFP runs and artifacts, the MLflow
# registry, deployed models). Usage: make kind-down (or CLUSTER_NAME=... kind-cluster/down.sh).
# Re-run: safe; does nothing when the cluster does not exist. Docker images on the host are kept.
set -euo pipefail

CLUSTER_NAME="${CLUSTER_NAME:-chicago-arrest}"

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
