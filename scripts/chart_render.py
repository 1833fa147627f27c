#!/usr/bin/env python3
"""Renders and checks charts/trivy-mirror with the real Helm SDK (PyPI helm-python-sdk).

Run it through scripts/chart-test.sh, which picks the venv under .tools/chart:

  chart_render.py check OUTDIR
      Lints the chart (also at the kubeVersion bounds), renders every mode and every ci/*.yaml,
      writes each rendering to OUTDIR/<case>/ (one file per manifest, plus NOTES.txt), checks the
      assertions below, and checks the custom resources (HTTPRoute, ReferenceGrant, ServiceMonitor)
      structurally. Prints OUTDIR/<case> directories for kubernetes-validate on stdout's last line.

  chart_render.py serve-container [-f VALUES.yaml]... [--set-json JSON]
      Prints the rendered serve Deployment's pod as JSON: the container (image, command, args, env,
      securityContext, volumeMounts, ports, probes), the pod securityContext and the volumes, so a
      test can run exactly that container under podman or docker.
"""
import argparse
import json
import pathlib
import re
import sys

import helm_python as helm
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "trivy-mirror"
RELEASE, NAMESPACE = "trivy-mirror", "trivy-system"
MODES = ["serve", "publish", "import"]
# Kinds kubernetes-validate has no schema for (CRDs); checked by crd_check() instead.
CRD_KINDS = {"HTTPRoute", "ReferenceGrant", "ServiceMonitor"}

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def load_values(paths, set_json=None):
    values = {}
    for p in paths:
        values = merge(values, yaml.safe_load(pathlib.Path(p).read_text()) or {})
    if set_json:
        values = merge(values, json.loads(set_json))
    return values


def merge(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def leaf_keys(values, prefix=""):
    """Dotted keys down to scalars, lists and empty maps; the security contexts and resources whole."""
    for k, v in values.items():
        if isinstance(v, dict) and v and k not in ("podSecurityContext", "securityContext", "resources"):
            yield from leaf_keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def in_range(constraint, version):
    """Evaluates a ">=A-0 <B-0" kubeVersion constraint (the only form the chart uses)."""
    def key(v):
        return tuple(int(x) for x in re.match(r"v?(\d+)\.(\d+)\.(\d+)", v).groups())
    ok = True
    for op, bound in re.findall(r"(>=|<)\s*(\S+)", constraint):
        ok &= key(version) >= key(bound) if op == ">=" else key(version) < key(bound)
    return ok


def render(values):
    """{template path: text} for a fresh install, empty renderings dropped."""
    out = helm.Chart.load(CHART).render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return {k: v for k, v in out.items() if v.strip()}


def documents(rendered):
    docs = []
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def find(docs, kind, name=None):
    hits = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return hits[0] if hits else None


def serve_pod(values):
    rendered = render(values)
    dep = find(documents(rendered), "Deployment")
    if dep is None:
        raise SystemExit("no serve Deployment in this rendering (mode is not serve?)")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    keys = ["image", "command", "args", "env", "securityContext", "volumeMounts", "ports",
            "livenessProbe", "readinessProbe", "resources"]
    # "command": null means the image's ENTRYPOINT (/usr/local/bin/trivy-mirror) runs the args.
    # NOTES.txt too: a test points Trivy at the pod with the values it prints.
    notes = next((text for path, text in rendered.items() if path.endswith("NOTES.txt")), "")
    return {"container": {k: c.get(k) for k in keys},
            "podSecurityContext": pod.get("securityContext", {}),
            "volumes": pod.get("volumes", []),
            "notes": notes}


# ---- structural checks of the custom resources (no schema in kubernetes-validate) ----

def only_keys(obj, allowed, where):
    extra = set(obj) - set(allowed)
    check(not extra, f"{where}: unknown fields {sorted(extra)}")


def crd_check(doc, case):
    kind, where = doc["kind"], f"{case}: {doc['kind']}"
    only_keys(doc, ["apiVersion", "kind", "metadata", "spec"], where)
    spec = doc["spec"]
    if kind == "HTTPRoute":
        check(doc["apiVersion"] == "gateway.networking.k8s.io/v1", f"{where}: apiVersion")
        only_keys(spec, ["parentRefs", "hostnames", "rules"], where + ".spec")
        check(spec["parentRefs"] and all("name" in p for p in spec["parentRefs"]), f"{where}: parentRefs need a name")
        for p in spec["parentRefs"]:
            only_keys(p, ["group", "kind", "namespace", "name", "sectionName", "port"], where + ".parentRefs[]")
        check(all(isinstance(h, str) and h for h in spec["hostnames"]), f"{where}: hostnames")
        for r in spec["rules"]:
            only_keys(r, ["name", "matches", "filters", "backendRefs", "timeouts"], where + ".rules[]")
            for m in r["matches"]:
                check(m["path"]["type"] in ("Exact", "PathPrefix", "RegularExpression"), f"{where}: path type")
            for b in r["backendRefs"]:
                only_keys(b, ["group", "kind", "name", "namespace", "port", "weight", "filters"], where + ".backendRefs[]")
                check(isinstance(b["port"], int), f"{where}: backendRefs port must be a number")
    elif kind == "ReferenceGrant":
        check(doc["apiVersion"] == "gateway.networking.k8s.io/v1beta1", f"{where}: apiVersion")
        only_keys(spec, ["from", "to"], where + ".spec")
        for f in spec["from"]:
            only_keys(f, ["group", "kind", "namespace"], where + ".from[]")
            check(all(k in f for k in ("group", "kind", "namespace")), f"{where}: from needs group, kind, namespace")
        for t in spec["to"]:
            only_keys(t, ["group", "kind", "name"], where + ".to[]")
            check("group" in t and "kind" in t, f"{where}: to needs group and kind")
    elif kind == "ServiceMonitor":
        check(doc["apiVersion"] == "monitoring.coreos.com/v1", f"{where}: apiVersion")
        only_keys(spec, ["selector", "endpoints", "namespaceSelector", "jobLabel"], where + ".spec")
        check("matchLabels" in spec["selector"], f"{where}: selector")
        for e in spec["endpoints"]:
            only_keys(e, ["port", "path", "interval", "scrapeTimeout", "scheme"], where + ".endpoints[]")
            check(isinstance(e["port"], str), f"{where}: endpoint port is a port *name*")


# ---- what a user would check ----

def assert_serve(docs, values, case):
    dep = find(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    sc, psc = c["securityContext"], pod["securityContext"]
    check(sc["readOnlyRootFilesystem"] is True, f"{case}: readOnlyRootFilesystem")
    check(sc["runAsNonRoot"] is True and psc["runAsNonRoot"] is True, f"{case}: runAsNonRoot")
    check(sc["allowPrivilegeEscalation"] is False, f"{case}: allowPrivilegeEscalation")
    check(sc["capabilities"]["drop"] == ["ALL"], f"{case}: capabilities drop ALL")
    check(psc["seccompProfile"]["type"] == "RuntimeDefault", f"{case}: seccomp RuntimeDefault")
    check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{case}: liveness on /healthz")
    check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{case}: readiness on /readyz")
    check(c["args"][:2] == ["serve", "/data"] and "--sync-every" in c["args"], f"{case}: serve /data --sync-every")
    check("--listen" in c["args"] and c["args"][c["args"].index("--listen") + 1].startswith("0.0.0.0:"),
          f"{case}: listens on 0.0.0.0 (the default 127.0.0.1 is unreachable from the Service)")
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    check(mounts.get("/tmp") == "tmp" and mounts.get("/data") == "data", f"{case}: /tmp and /data mounted")
    check(all("subPath" not in m for m in c["volumeMounts"]), f"{case}: no subPath (it stops Secret updates)")
    check(c["resources"].get("limits") and c["resources"].get("requests"), f"{case}: resources set")
    check(find(docs, "Service") is not None, f"{case}: Service")
    check(find(docs, "NetworkPolicy") is not None, f"{case}: NetworkPolicy")
    tls = values.get("serve", {}).get("tls", {}).get("enabled")
    check(c["readinessProbe"]["httpGet"]["scheme"] == ("HTTPS" if tls else "HTTP"), f"{case}: probe scheme")


def assert_sync(docs, case, mode):
    cj = find(docs, "CronJob")
    check(cj is not None, f"{case}: CronJob")
    if cj is None:
        return
    check(cj["spec"]["concurrencyPolicy"] == "Forbid", f"{case}: concurrencyPolicy Forbid")
    c = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    check(c["args"][0] == "sync" and c["args"][1] == "--to", f"{case}: sync --to")
    check(c["securityContext"]["readOnlyRootFilesystem"] is True, f"{case}: readOnlyRootFilesystem")
    if mode == "import":
        src = c["args"][c["args"].index("--source") + 1]
        check(src.startswith(("oci-archive:/bundle/", "oci:/bundle/")), f"{case}: import reads the bundle")


def check_case(case, values, outdir):
    rendered = render(values)
    docs = documents(rendered)
    d = outdir / case
    d.mkdir(parents=True)
    n = 0
    for doc in docs:
        n += 1
        sub = "crd" if doc["kind"] in CRD_KINDS else "k8s"
        (d / sub).mkdir(exist_ok=True)
        (d / sub / f"{n:02d}-{doc['kind']}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        if doc["kind"] in CRD_KINDS:
            crd_check(doc, case)
    notes = next((v for k, v in rendered.items() if k.endswith("NOTES.txt")), "")
    (d / "NOTES.txt").write_text(notes)
    mode = values.get("mode", "serve")
    if mode == "serve":
        assert_serve(docs, values, case)
    else:
        assert_sync(docs, case, mode)
    for key in ("dbRegistry:", "dbRepository:", "javaDbRegistry:", "javaDbRepository:",
                "policiesBundle:", "--db-repository", "--java-db-repository",
                "--checks-bundle-repository", "registry:\n  mirrors:"):
        check(key in notes, f"{case}: NOTES prints {key!r}")
    return d, docs, notes


def cmd_check(outdir):
    outdir = pathlib.Path(outdir)
    # Lint: errors (severity 3) fail, at the chart's own settings and at both ends of kubeVersion.
    for kv in (None, "v1.31.0", "v1.37.0"):
        report = helm.lint(str(CHART), kube_version=kv)
        errs = [m for m in report["messages"] if m["severity"] >= 3] + report.get("errors", [])
        check(not errs, f"lint (kube {kv}): {errs}")
    # Neither lint nor an offline render evaluates kubeVersion (Helm does at install, against the
    # API server's version), so read the constraint and check the range it admits.
    kube = helm.Chart.load(CHART).metadata["kubeVersion"]
    for v, ok in [("1.31.0", True), ("1.33.4-eks-1234", True), ("1.37.9", True), ("1.30.14", False), ("1.38.0", False)]:
        check(in_range(kube, v) == ok, f"kubeVersion {kube!r} {'should' if ok else 'should not'} admit {v}")

    # The README's values table documents every key of values.yaml.
    readme = (CHART / "README.md").read_text()
    for key in leaf_keys(yaml.safe_load((CHART / "values.yaml").read_text())):
        check(f"| `{key}` |" in readme, f"README values table lacks `{key}`")

    cases = {"default": {}}
    for mode in MODES:
        ci = CHART / "ci" / f"{mode}-values.yaml"
        cases[f"mode-{mode}"] = load_values([ci]) if ci.exists() else {"mode": mode}
    for ci in sorted((CHART / "ci").glob("*.yaml")):
        cases[f"ci-{ci.stem}"] = load_values([ci])

    for case, values in cases.items():
        d, docs, notes = check_case(case, values, outdir)
        print(f"rendered {case}: {len(docs)} manifests", file=sys.stderr)
        # Case-specific expectations.
        if case == "default":
            pvc = find(docs, "PersistentVolumeClaim")
            check(pvc and pvc["spec"]["resources"]["requests"]["storage"] == "5Gi", "default: PVC of 5Gi")
            check('dbRepositoryInsecure: "true"' in notes and "insecure: true" in notes,
                  "default: plain-http Service → NOTES says dbRepositoryInsecure")
            check(".svc.cluster.local:8080" in notes, "default: NOTES names the Service")
        if case == "ci-tls-values":
            check("dbRepositoryInsecure" not in notes, "tls: no dbRepositoryInsecure over TLS")
            check(":8443" in notes, "tls: NOTES uses the Service port")
        if case == "ci-htpasswd-values":
            check("existingSecret: true" in notes, "htpasswd: NOTES explains credentials")
        if case == "ci-ingress-values":
            check('dbRegistry: "trivy-mirror.example.com"' in notes and "dbRepositoryInsecure" not in notes,
                  "ingress: NOTES uses the https host")
        if case == "ci-httproute-values":
            check(find(docs, "HTTPRoute") and find(docs, "ReferenceGrant"), "httproute: HTTPRoute + ReferenceGrant")
        if case == "ci-servicemonitor-values":
            check(find(docs, "ServiceMonitor") is not None, "servicemonitor: rendered")
        if case.startswith("ci-publish") or case == "mode-publish":
            check(find(docs, "Job") is not None or "initialJob" in json.dumps(values), f"{case}: install-time Job")
        if case == "ci-publish-s3-values":
            sa = find(docs, "ServiceAccount")
            check(sa["metadata"]["annotations"].get("eks.amazonaws.com/role-arn"), "s3: IRSA annotation")
        if case == "ci-publish-gs-values":
            sa = find(docs, "ServiceAccount")
            check(sa["metadata"]["annotations"].get("iam.gke.io/gcp-service-account"), "gs: GKE WI annotation")
        if case == "ci-publish-az-values":
            sa = find(docs, "ServiceAccount")
            cj = find(docs, "CronJob")
            check(sa["metadata"]["annotations"].get("azure.workload.identity/client-id"), "az: client-id annotation")
            labels = cj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
            check(labels.get("azure.workload.identity/use") == "true", "az: pod label azure.workload.identity/use")
        if case == "ci-publish-oci-values":
            check('dbRegistry: "harbor.example.com"' in notes and 'dbRepository: "security/aquasecurity/trivy-db"' in notes,
                  "oci: NOTES names the registry and its namespace")
        if case == "ci-proxy-ca-values":
            env = {e["name"]: e.get("value") for e in find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
            check(env.get("HTTPS_PROXY") and env.get("NO_PROXY") and env.get("SSL_CERT_FILE") and env.get("DOCKER_CONFIG"),
                  "proxy-ca: HTTPS_PROXY, NO_PROXY, SSL_CERT_FILE, DOCKER_CONFIG")

    # A bucket with no publicHost: NOTES says what to fill in rather than inventing a host.
    notes = next(v for k, v in render({"mode": "publish", "publish": {"to": ["gs://b"]}}).items() if k.endswith("NOTES.txt"))
    check("MIRROR-HOST" in notes and "publish.publicHost" in notes, "bucket without publicHost: NOTES placeholder")

    # Wrong values fail at install with a message naming the value.
    for bad, expect in [({"mode": "bogus"}, "/mode"),
                        ({"serve": {"port": "http"}}, "/serve/port"),
                        ({"service": {"port": 0}}, "/service/port"),
                        ({"mode": "publish"}, "/publish/to"),
                        ({"mode": "publish", "publish": {"to": ["ftp://x"]}}, "/publish/to/0"),
                        ({"mode": "import", "publish": {"to": ["s3://b"]}}, "/bundle/volume"),
                        ({"serve": {"syncEvery": "often"}}, "/serve/syncEvery"),
                        ({"ingress": {"enabled": True}}, "/ingress/host"),
                        ({"servce": {}}, "servce")]:
        try:
            render(bad)
            check(False, f"schema accepted {bad}")
        except helm.HelmError as e:
            check(expect in str(e), f"schema error for {bad} should name {expect}: {e}")
            print(f"refused {json.dumps(bad)}: {str(e).strip().splitlines()[-1].strip()}", file=sys.stderr)

    if failures:
        print("\n".join(f"FAIL {f}" for f in failures), file=sys.stderr)
        return 1
    print(f"{len(cases)} renderings checked", file=sys.stderr)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("outdir")
    s = sub.add_parser("serve-container")
    s.add_argument("-f", "--values", action="append", default=[])
    s.add_argument("--set-json")
    a = ap.parse_args()
    if a.cmd == "check":
        return cmd_check(a.outdir)
    print(json.dumps(serve_pod(load_values(a.values, a.set_json)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
