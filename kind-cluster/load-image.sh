#!/usr/bin/env bash
# Load an image of the local Docker engine into a kind cluster (make image, make kind-load, up.sh).
#
# Usage:   kind-cluster/load-image.sh IMAGE [CLUSTER_NAME]      (CLUSTER_NAME default: chicago-arrest)
#
# First `kind load docker-image` (it skips an image the node already has). With Docker's containerd image store
# (the default of Docker >= 29 and Docker Desktop) that can fail with "content digest ... not found"
# (kubernetes-sigs/kind#3795, open; `docker save` exports the whole OCI index while only the host platform's
# blobs are local). Then the workaround kind's maintainers point to: save only the image's own platform
# (`docker image save --platform`, Docker >= 28) and `kind load image-archive`.
set -euo pipefail

die() {
  printf 'ERROR: %s\n' "$*" >&2
  exit 1
}

(($# >= 1 && $# <= 2)) || die "usage: $0 IMAGE [CLUSTER_NAME]"
image="$1"
cluster="${2:-chicago-arrest}"

if output="$(kind load docker-image "${image}" --name "${cluster}" 2>&1)"; then
  printf '%s\n' "${output}"
  exit 0
fi
printf '%s\n' "${output}" >&2
printf 'WARNING: kind load docker-image %s failed; retrying with docker image save --platform and kind load image-archive (kind#3795)\n' \
  "${image}" >&2

# The platform of the local image, not of the daemon: images pulled under emulation differ (reanahub/reana#961).
platform="$(docker image inspect -f '{{.Os}}/{{.Architecture}}{{if .Variant}}/{{.Variant}}{{end}}' "${image}")" ||
  die "image ${image} is not in the local Docker engine: run make image"
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
docker image save --platform "${platform}" -o "${tmp}/image.tar" "${image}" ||
  die "docker image save --platform ${platform} ${image} failed (needs Docker >= 28); see kind-cluster/README.md, troubleshooting 'content digest not found'"
kind load image-archive "${tmp}/image.tar" --name "${cluster}" ||
  die "kind load image-archive failed too: see kind-cluster/README.md, troubleshooting 'content digest not found'"
printf 'Loaded %s (%s) into kind cluster %s from an image archive\n' "${image}" "${platform}" "${cluster}"
