#!/usr/bin/env bash
# Tests charts/trivy-mirror with no cluster and no network, in seconds:
#
#   1. lint with the real Helm SDK (PyPI helm-python-sdk: Helm v4 as a library; no helm binary exists
#      in the package registries), at the chart's settings and at kubeVersion 1.31 and 1.37;
#   2. render the defaults, every mode (`mode: <mode>`, or ci/<mode>-values.yaml where a mode needs
#      more), and every ci/*.yaml (chart-testing's convention: one file per option group), with
#      assertions a user would make (read-only root, non-root, probes on /healthz and /readyz, 5Gi
#      PVC, Forbid, identities, NOTES content) and wrong values refused by values.schema.json;
#   3. validate every rendered manifest with `kubernetes-validate --strict` against Kubernetes 1.31
#      and 1.37 (a planted unknown field must fail, so strict mode is known to bite). HTTPRoute,
#      ReferenceGrant and ServiceMonitor are CRDs that kubernetes-validate has no schema for: they
#      get a structural check in scripts/chart_render.py (apiVersion, known fields, types);
#   4. `trivy config` (real Trivy 0.76, embedded checks, no update) on the chart and on every
#      rendering: no HIGH or CRITICAL finding.
#
# Helper for other tests (the container run under podman):
#   scripts/chart-test.sh --print-serve-container [-f VALUES.yaml]... [--set-json JSON]
# prints the rendered serve Deployment's container (image, command, args, env, securityContext,
# volumeMounts, ports, probes), the pod securityContext and volumes as JSON on stdout.
#
# Needs .tools/chart (helm-python-sdk, kubernetes-validate) and .tools/trivy-0.76.0 from
# scripts/install-test-deps.sh. KEEP=1 keeps the rendered manifests and prints where.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=$ROOT/.tools/chart/bin/python
KV=$ROOT/.tools/chart/bin/kubernetes-validate
TRIVY=$ROOT/.tools/trivy-0.76.0/bin/trivy
for tool in "$PY" "$KV" "$TRIVY"; do
  [ -x "$tool" ] || { echo "chart-test: $tool missing: run scripts/install-test-deps.sh" >&2; exit 1; }
done

if [ "${1:-}" = --print-serve-container ]; then
  shift # values files are read relative to the caller's directory
  exec "$PY" "$ROOT/scripts/chart_render.py" serve-container "$@"
fi
cd "$ROOT"

log() { printf '[chart-test] %s\n' "$*" >&2; }
WORK=$(mktemp -d)
if [ "${KEEP:-}" = 1 ]; then log "renderings kept in $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi

log "lint, render, assertions, schema refusals, CRD structure"
"$PY" scripts/chart_render.py check "$WORK/out"

# The serve container as a later test would run it (podman), from the defaults.
scripts/chart-test.sh --print-serve-container >"$WORK/serve-container.json"
"$PY" - "$WORK/serve-container.json" <<'PYEOF'
import json, sys
pod = json.load(open(sys.argv[1]))
c = pod["container"]
assert c["image"] and c["args"][:2] == ["serve", "/data"], c
assert c["securityContext"]["readOnlyRootFilesystem"] and pod["podSecurityContext"]["runAsUser"] == 65532, pod
assert {m["mountPath"] for m in c["volumeMounts"]} >= {"/data", "/tmp"}, c["volumeMounts"]
PYEOF
log "serve container written as JSON ($WORK/serve-container.json)"

log "kubernetes-validate --strict, 1.31 and 1.37"
mapfile -t manifests < <(find "$WORK/out" -path '*/k8s/*.yaml' | sort)
for k in 1.31.0 1.37.0; do
  "$KV" -k "$k" --strict --quiet "${manifests[@]}"
done
log "${#manifests[@]} manifests valid against both"
# Negative control: strict validation must refuse a field Kubernetes does not have.
planted="$WORK/planted.yaml"
sed 's/^spec:$/spec:\n  replicaz: 1/' "$(find "$WORK/out/default/k8s" -name '*-Deployment.yaml')" >"$planted"
if "$KV" -k 1.31.0 --strict --quiet "$planted" >/dev/null 2>&1; then
  log "FAIL: kubernetes-validate --strict accepted an unknown field"; exit 1
fi

log "trivy config (HIGH, CRITICAL) on the chart and on every rendering"
export TRIVY_SKIP_VERSION_CHECK=true TRIVY_DISABLE_TELEMETRY=true
for target in charts/trivy-mirror "$WORK/out"; do
  "$TRIVY" config --quiet --skip-check-update --cache-dir "$WORK/trivy-cache" \
    --severity HIGH,CRITICAL --exit-code 1 "$target" >"$WORK/trivy.txt" 2>&1 \
    || { cat "$WORK/trivy.txt" >&2; log "FAIL: trivy config found HIGH/CRITICAL in $target"; exit 1; }
done
log "ok"
