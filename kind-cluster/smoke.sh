#!/usr/bin/env bash
# Smoke test of the kind cluster after `make kind-up` (`make kind-smoke`): PASS/FAIL per check, each FAIL with
# the kubectl command to look closer. It changes the cluster: two pipeline runs (registry versions, a deployed
# InferenceService), then canary 50 %, promote and rollback. Run it on a cluster you may change.
#
# Checks, in order:
#   1. every component is ready (cert-manager, KFP, Knative + Kourier, KServe, MinIO, MLflow, the bucket Job),
#      and the apps' MinIO keys are not the root keys;
#   2. no KFP run is active: a run `make pipeline-run` started would change the registry and the
#      InferenceService under the checks (smoke.py quiet waits up to ACTIVE_RUNS_TIMEOUT, then names them);
#   3. the pipeline, run on the cluster on generated records (kind-cluster/smoke.py land: 3 months and their
#      police stations landed in the data bucket through MinIO's host port, so no step calls Socrata): first
#      run -> a champion serving 100 %;
#   4. a second run on other generated records -> a challenger at 10 % (promotion margin -1, so it always passes);
#   5. V2 requests through Kourier: the versions answering match the stated split (4 standard deviations);
#   6. `serving canary --percent 50`, `serving promote`, `serving rollback` (no --target: the recorded cluster),
#      each followed by requests that show the effect.
# After each run and each serving verb, `smoke.py settle` waits until the predictor's newest revision runs the
# spec and is ready (latestCreatedRevision == latestReadyRevision; SETTLE_TIMEOUT), else names the revision and
# its pods' state. On any FAIL, kind-cluster/diagnose.sh writes one archive and the last line says where.
#
# Usage:   make kind-smoke                (or: CLUSTER_NAME=... PYTHON=.venv/bin/python kind-cluster/smoke.sh)
# Needs:   kubectl, curl, the project's Python (.venv), and the record of make kind-up (.data/cluster.json).
# Environment: CLUSTER_NAME (default chicago-arrest), PYTHON (default .venv/bin/python), REQUESTS per sample
#   (default 200), RUN_TIMEOUT seconds per pipeline run (default 1800), ACTIVE_RUNS_TIMEOUT seconds to wait for
#   runs already active (default 1800), SETTLE_TIMEOUT seconds per revision (default 600), WAIT_TIMEOUT (600s),
#   SKIP_DIAGNOSE=1 (no archive on failure).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${HERE}/.." && pwd)"
CLUSTER_NAME="${CLUSTER_NAME:-chicago-arrest}"
CONTEXT="kind-${CLUSTER_NAME}"
PYTHON="${PYTHON:-${REPO_ROOT}/.venv/bin/python}"
REQUESTS="${REQUESTS:-200}"
RUN_TIMEOUT="${RUN_TIMEOUT:-1800}"
ACTIVE_RUNS_TIMEOUT="${ACTIVE_RUNS_TIMEOUT:-1800}"
SETTLE_TIMEOUT="${SETTLE_TIMEOUT:-600}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-600s}"
SKIP_DIAGNOSE="${SKIP_DIAGNOSE:-0}"
ISVC="arrest-predictor"
RECORD="${ARREST_DATA_DIR:-${REPO_ROOT}/.data}/cluster.json"

passed=0
failed=0
STATE="$(mktemp "${TMPDIR:-/tmp}/smoke-state.XXXXXX")"
trap 'rm -f "${STATE}"' EXIT

k() { kubectl --context "${CONTEXT}" "$@"; }

# check NAME HINT COMMAND...: run COMMAND; PASS with its last output line, or FAIL with it and HINT.
check() {
  local name="$1" hint="$2" output status=0
  shift 2
  output="$("$@" 2>&1)" || status=$?
  local last
  last="$(printf '%s\n' "${output}" | awk 'NF {line = $0} END {print line}')"
  if ((status == 0)); then
    printf 'PASS  %s%s\n' "${name}" "${last:+: ${last}}"
    passed=$((passed + 1))
  else
    printf 'FAIL  %s%s\n' "${name}" "${last:+: ${last}}"
    printf '      look closer: %s\n' "${hint}"
    failed=$((failed + 1))
  fi
  return "${status}"
}

deployments_available() {
  k -n "$1" wait --for=condition=Available deployment --all --timeout=60s >/dev/null || return 1
  echo "all deployments of $1 Available"
}

app_keys_not_root() {
  local root namespace secret key user
  root="$(k -n minio get secret minio-root -o 'go-template={{.data.MINIO_ROOT_USER | base64decode}}')" || return 1
  [[ -n "${root}" ]] || {
    echo "Secret minio/minio-root has no MINIO_ROOT_USER"
    return 1
  }
  for namespace_secret_key in kubeflow/chicago-arrest-s3/ARREST_S3_ACCESS_KEY mlflow/mlflow-s3/AWS_ACCESS_KEY_ID \
    models/kserve-s3/AWS_ACCESS_KEY_ID; do
    IFS=/ read -r namespace secret key <<<"${namespace_secret_key}"
    user="$(k -n "${namespace}" get secret "${secret}" -o "go-template={{index .data \"${key}\" | base64decode}}")" ||
      return 1
    if [[ -z "${user}" || "${user}" == "${root}" ]]; then
      echo "${namespace}/${secret} holds ${user:-no key}, not an app user of its own"
      return 1
    fi
  done
  echo "steps, mlflow and kserve use their own MinIO users"
}

land() {
  # The steps' MinIO keys reach smoke.py through its environment, not its command line.
  local access secret
  access="$(k -n kubeflow get secret chicago-arrest-s3 -o 'go-template={{.data.ARREST_S3_ACCESS_KEY | base64decode}}')" ||
    return 1
  secret="$(k -n kubeflow get secret chicago-arrest-s3 -o 'go-template={{.data.ARREST_S3_SECRET_KEY | base64decode}}')" ||
    return 1
  ARREST_S3_ACCESS_KEY="${access}" ARREST_S3_SECRET_KEY="${secret}" "${PYTHON}" "${HERE}/smoke.py" land --seed "$1"
}

isvc_ready() {
  k -n models wait --for=condition=Ready "isvc/${ISVC}" --timeout="${WAIT_TIMEOUT}" >/dev/null || return 1
  echo "InferenceService ${ISVC} Ready"
}

ingress_host() {
  k -n models get isvc "${ISVC}" -o jsonpath='{.status.url}' | cut -d/ -f3
}

v2_ready() {
  local host url
  host="$(ingress_host)" || return 1
  url="$(ingress_url)/v2/models/${ISVC}/ready" || return 1
  curl -fsS --max-time 10 -H "Host: ${host}" "${url}" >/dev/null || return 1
  echo "GET ${url} (Host: ${host}): 200"
}

ingress_url() {
  "${PYTHON}" -c 'import sys; from chicago_arrest.core.targets import read_record; from pathlib import Path
r = read_record(Path(sys.argv[1])); print(r.ingress_url if r and r.ingress_url else "http://localhost:8180")' "${RECORD}"
}

traffic() {
  "${PYTHON}" "${HERE}/smoke.py" traffic --host-header "$(ingress_host)" --requests "${REQUESTS}" \
    --state "${STATE}" "$@"
}

settle() {
  "${PYTHON}" "${HERE}/smoke.py" settle --timeout "${SETTLE_TIMEOUT}"
}

diagnose() {
  # One archive with what a person needs (kind-cluster/diagnose.sh); its last line says where it is.
  if [[ "${SKIP_DIAGNOSE}" == "1" ]]; then
    printf '    diagnostics: skipped (SKIP_DIAGNOSE=1); make kind-diagnose writes them\n'
    return
  fi
  local line
  line="$(CLUSTER_NAME="${CLUSTER_NAME}" PYTHON="${PYTHON}" "${HERE}/diagnose.sh" 2>&1 | tail -n 1)" || true
  if [[ "${line}" == diagnostics:* ]]; then
    printf '%s\n' "${line}"
  else
    printf 'diagnostics: not written (%s); try make kind-diagnose\n' "${line}"
  fi
}

serving() {
  # The make targets' command, without --target: the recorded cluster is the target (chicago_arrest.core.targets).
  "${PYTHON}" -m chicago_arrest.cli serving "$@"
}

main() {
  cd "${REPO_ROOT}"
  printf '==> Smoke test of kind cluster %s (context %s)\n' "${CLUSTER_NAME}" "${CONTEXT}"
  local tool
  for tool in kubectl curl; do
    command -v "${tool}" >/dev/null 2>&1 || {
      printf 'FAIL  prerequisites: %s is not on PATH\n' "${tool}"
      exit 1
    }
  done
  [[ -x "${PYTHON}" ]] || {
    printf 'FAIL  prerequisites: %s is not executable (make install)\n' "${PYTHON}"
    exit 1
  }
  if [[ ! -f "${RECORD}" ]]; then
    printf 'FAIL  prerequisites: no cluster recorded in %s\n      look closer: run make kind-up first\n' "${RECORD}"
    exit 1
  fi

  local namespace
  for namespace in cert-manager kubeflow knative-serving kourier-system kserve minio mlflow; do
    check "ready: ${namespace}" "kubectl --context ${CONTEXT} -n ${namespace} get deploy,pods" \
      deployments_available "${namespace}" || true
  done
  check "ready: bucket Job" "kubectl --context ${CONTEXT} -n minio logs job/minio-buckets --all-containers" \
    k -n minio wait --for=condition=complete job/minio-buckets --timeout=60s || true
  check "MinIO: per-app users" "kubectl --context ${CONTEXT} -n minio logs job/minio-buckets -c users" \
    app_keys_not_root || true

  local runs="kubectl --context ${CONTEXT} -n kubeflow get workflows; KFP UI: see .data/cluster.json kfp_host"
  local isvc_hint="kubectl --context ${CONTEXT} -n models describe isvc ${ISVC}; kubectl --context ${CONTEXT} -n models get revisions,pods"
  local split_hint="${PYTHON} -m chicago_arrest.cli serving status; kubectl --context ${CONTEXT} -n models get isvc ${ISVC} -o yaml"
  local rev_hint="kubectl --context ${CONTEXT} -n models get revisions,pods -o wide; ${PYTHON} -m chicago_arrest.cli serving status"
  if check "KFP: no run active" "${PYTHON} ${HERE}/smoke.py runs; ${runs}" \
    "${PYTHON}" "${HERE}/smoke.py" quiet --timeout "${ACTIVE_RUNS_TIMEOUT}" &&
    check "data: generated records landed (seed 1)" "kubectl --context ${CONTEXT} -n minio logs deploy/minio" land 1 &&
    check "pipeline run 1 (champion)" "${runs}" "${PYTHON}" "${HERE}/smoke.py" run --seed 1 --timeout "${RUN_TIMEOUT}" &&
    check "serving: InferenceService ready" "${isvc_hint}" isvc_ready &&
    check "serving: newest revision ready (run 1)" "${rev_hint}" settle &&
    check "serving: V2 ready through Kourier" "${isvc_hint}" v2_ready &&
    check "traffic: champion alone" "${split_hint}" traffic --expect 0 &&
    check "data: other generated records landed (seed 2)" "kubectl --context ${CONTEXT} -n minio logs deploy/minio" land 2 &&
    check "pipeline run 2 (challenger at 10 %)" "${runs}" "${PYTHON}" "${HERE}/smoke.py" run --seed 2 --timeout "${RUN_TIMEOUT}" &&
    check "serving: newest revision ready (run 2)" "${rev_hint}" settle &&
    check "traffic: challenger at about 10 %" "${split_hint}" traffic --expect 10 &&
    check "canary 50" "${split_hint}" serving canary --percent 50 &&
    check "serving: newest revision ready (canary 50)" "${rev_hint}" settle &&
    check "traffic: challenger at about 50 %" "${split_hint}" traffic --expect 50 &&
    check "promote" "${split_hint}" serving promote &&
    check "serving: newest revision ready (promote)" "${rev_hint}" settle &&
    check "traffic: the former challenger alone" "${split_hint}" traffic --expect 0 --expect-champion previous-challenger &&
    check "rollback" "${split_hint}" serving rollback &&
    check "serving: newest revision ready (rollback)" "${rev_hint}" settle &&
    check "traffic: one version, as status states" "${split_hint}" traffic --expect 0; then
    :
  fi

  printf '==> %d passed, %d failed\n' "${passed}" "${failed}"
  if ((failed > 0)); then
    diagnose
  fi
  ((failed == 0))
}

main "$@"
