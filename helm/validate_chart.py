#!/usr/bin/env python3
"""Offline validation of the herald Helm chart (run through scripts/validate-chart.sh).

Checks, each counted as passed / failed / skipped:
  lint        helm lint (Helm's own code via helm-python-sdk), strict, per values file
  schema      values.schema.json accepts the default and ci/ values files, and REJECTS every
              file in helm/invalid-values/ at the stage it names (schema or render)
  render      helm template per values file; every manifest is YAML with apiVersion/kind
  k8s         every rendered object validated with kubernetes-validate --strict against
              several Kubernetes versions
  crd         ServiceMonitor against prometheus-operator's CRD schema (check-jsonschema);
              HTTPRoute reported as skipped (no offline schema on PyPI)
  config      herald.toml from the rendered Secret parses as TOML; `herald config check` on it
              when a herald binary is present
  contract    chart invariants: grace period = preStop + drain window + margin, probes,
              security context, named ports, checksum annotation, nginx WebSocket timeouts
  dashboard   dashboards/herald.json parses, every PromQL expression parses and names only
              metrics of the contract list (which must equal the list in the chart README)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import helm_python as helm
import kubernetes_validate.utils as kv
import promql_parser
import yaml

HELM_DIR = Path(__file__).resolve().parent
CHART = HELM_DIR / "herald"
REPO = HELM_DIR.parent
INVALID = HELM_DIR / "invalid-values"
K8S_VERSIONS = ["1.30.0", "1.33.0", "1.37.0"]
RELEASE, NAMESPACE = "herald-ci", "realtime"
VENV_BIN = Path(sys.executable).parent

# The metrics herald exports (prefix herald_, label app_id only). The chart README holds the
# same list between its "metrics-contract" markers; the check below keeps the two equal.
CONTRACT = {
    "herald_connected",
    "herald_new_connections_total",
    "herald_new_disconnections_total",
    "herald_socket_received_bytes",
    "herald_socket_transmitted_bytes",
    "herald_ws_messages_received_total",
    "herald_ws_messages_sent_total",
    "herald_http_calls_received_total",
    "herald_fanout_latency_seconds",
    "herald_outbox_overflows_total",
    "herald_rate_limited_total",
    "herald_webhook_deliveries_total",
    "herald_webhook_failures_total",
    "herald_webhook_retries_total",
    "herald_webhook_queue_depth",
    "herald_presence_members",
    "herald_channels",
}
HISTOGRAMS = {"herald_fanout_latency_seconds"}

passed = failed = skipped = 0


def ok(what: str) -> None:
    global passed
    passed += 1
    print(f"  ok    {what}")


def fail(what: str, why: str = "") -> None:
    global failed
    failed += 1
    print(f"  FAIL  {what}" + (f": {why}" if why else ""))


def skip(what: str, why: str) -> None:
    global skipped
    skipped += 1
    print(f"  skip  {what}: {why}")


def section(title: str) -> None:
    print(f"\n== {title}")


def load_values(path: Path | None) -> dict:
    if path is None:
        return {}
    return helm.values_from_yaml(path.read_text()) or {}


def values_files() -> list[tuple[str, Path | None]]:
    files: list[tuple[str, Path | None]] = [("defaults", None)]
    files += [(f"ci/{p.name}", p) for p in sorted((CHART / "ci").glob("*.yaml"))]
    return files


def render(chart: helm.Chart, values: dict) -> dict[str, str]:
    return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def objects_of(manifests: dict[str, str]) -> list[tuple[str, dict]]:
    out = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt") or not text.strip():
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                out.append((path, doc))
    return out


# --- lint -----------------------------------------------------------------------------------

def check_lint() -> None:
    section("helm lint (strict: warnings fail)")
    for label, path in values_files():
        values = load_values(path)
        for kube in ("v1.30.0", "v1.33.0"):
            report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE, kube_version=kube)
            problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
            problems += [{"path": "", "error": e} for e in report.get("errors", []) or []]
            infos = [m["error"] for m in report.get("messages", []) if m.get("severity", 0) < 2]
            if problems:
                fail(f"lint {label} (kube {kube})", "; ".join(f"{m['path']}: {m['error']}" for m in problems))
            else:
                note = f" (info: {'; '.join(infos)})" if infos else ""
                ok(f"lint {label} (kube {kube}){note}")


# --- schema -----------------------------------------------------------------------------------

def check_schema(chart: helm.Chart) -> None:
    section("values.schema.json")
    for label, path in values_files():
        try:
            chart.validate_schema(load_values(path))
            ok(f"schema accepts {label}")
        except helm.HelmError as e:
            fail(f"schema accepts {label}", str(e))
    invalid = sorted(INVALID.glob("*.yaml"))
    if not invalid:
        fail("negative cases", f"no files in {INVALID}")
    for path in invalid:
        text = path.read_text()
        expect = re.search(r"^# expect: (schema|render)$", text, re.M)
        match = re.search(r"^# match: (.+)$", text, re.M)
        name = f"rejects invalid-values/{path.name}"
        if not expect or not match:
            fail(name, "needs '# expect: schema|render' and '# match: TEXT' lines")
            continue
        values = load_values(path)
        stage, needle = expect.group(1), match.group(1).strip()
        try:
            chart.validate_schema(values)
            schema_error = None
        except helm.HelmError as e:
            schema_error = str(e)
        if stage == "schema":
            if schema_error is None:
                fail(name, "the schema ACCEPTED it")
            elif needle not in schema_error:
                fail(name, f"rejected, but the message does not name {needle!r}: {schema_error}")
            else:
                ok(f"{name} at schema ({schema_error.splitlines()[-1].strip()[:110]})")
            continue
        if schema_error is not None:
            fail(name, f"expected the render to refuse it, but the schema did: {schema_error}")
            continue
        try:
            render(chart, values)
            fail(name, "rendered without error")
        except helm.HelmError as e:
            if needle in str(e):
                ok(f"{name} at render ({needle})")
            else:
                fail(name, f"render failed, but not with {needle!r}: {e}")


# --- render + kubernetes-validate + CRDs ------------------------------------------------------

_SM_SCHEMA: dict = {}


def servicemonitor_schema(tmp: Path) -> Path | None:
    """prometheus-operator's ServiceMonitor schema from the cloudcoil models package, with
    additionalProperties: false on every object that lists its properties (strict, like
    kubernetes-validate --strict)."""
    try:
        from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor
    except Exception as e:  # pragma: no cover - reported as a failure by the caller
        print(f"  (cannot import the ServiceMonitor model: {e})")
        return None
    if "schema" not in _SM_SCHEMA:
        _SM_SCHEMA["schema"] = ServiceMonitor.model_json_schema(by_alias=True)
    schema = json.loads(json.dumps(_SM_SCHEMA["schema"]))

    def strict(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for v in node.values():
                strict(v)
        elif isinstance(node, list):
            for v in node:
                strict(v)

    strict(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out = tmp / "servicemonitor.schema.json"
    out.write_text(json.dumps(schema))
    return out


def check_validators_are_strict(rendered: dict[str, list[tuple[str, dict]]]) -> None:
    """The validators must reject a misspelt field, or their passes prove nothing."""
    section("the validators reject typos")
    objs = [o for _, o in rendered.get("ci/all-options-values.yaml", [])]
    dep = next((o for o in objs if o["kind"] == "Deployment"), None)
    if dep is None:
        fail("kubernetes-validate strictness", "no Deployment rendered from ci/all-options-values.yaml")
    else:
        broken = json.loads(json.dumps(dep))
        broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
        try:
            kv.validate(broken, K8S_VERSIONS[0], strict=True)
            fail("kubernetes-validate --strict rejects containers[0].readinesProbe", "it passed")
        except kv.ValidationError as e:
            ok(f"kubernetes-validate --strict rejects containers[0].readinesProbe ({e.message[:80]})")
    sm = next((o for o in objs if o["kind"] == "ServiceMonitor"), None)
    schema = servicemonitor_schema(Path(tempfile.mkdtemp(prefix="herald-chart-")))
    if sm is None or schema is None:
        fail("check-jsonschema strictness", "no ServiceMonitor or no schema")
        return
    broken = json.loads(json.dumps(sm))
    broken["spec"]["endpoints"][0]["intervall"] = "15s"
    doc = schema.parent / "broken-servicemonitor.yaml"
    doc.write_text(yaml.safe_dump(broken))
    res = subprocess.run([str(VENV_BIN / "check-jsonschema"), "--schemafile", str(schema), str(doc)],
                         capture_output=True, text=True)
    if res.returncode != 0 and "intervall" in res.stdout + res.stderr:
        ok("check-jsonschema rejects ServiceMonitor spec.endpoints[0].intervall")
    else:
        fail("check-jsonschema rejects ServiceMonitor spec.endpoints[0].intervall", (res.stdout + res.stderr).strip() or "it passed")


def check_render_and_k8s(chart: helm.Chart) -> dict[str, list[tuple[str, dict]]]:
    rendered: dict[str, list[tuple[str, dict]]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="herald-chart-"))
    sm_schema: Path | None = None
    sm_schema_tried = False
    for label, path in values_files():
        section(f"render + kubernetes-validate --strict: {label}")
        values = load_values(path)
        try:
            manifests = render(chart, values)
            objs = objects_of(manifests)
        except (helm.HelmError, yaml.YAMLError) as e:
            fail(f"render {label}", str(e))
            continue
        bad = [p for p, o in objs if not (isinstance(o, dict) and o.get("apiVersion") and o.get("kind"))]
        if bad:
            fail(f"render {label}", f"objects without apiVersion/kind in {bad}")
            continue
        kinds = ", ".join(sorted({o["kind"] for _, o in objs}))
        ok(f"render {label}: {len(objs)} objects ({kinds})")
        rendered[label] = objs
        notes = next((t for p, t in manifests.items() if p.endswith("NOTES.txt")), "")
        if "<no value>" in notes or not notes.strip():
            fail(f"NOTES.txt {label}", "empty or contains <no value>")
        else:
            ok(f"NOTES.txt {label} renders")
        for src, obj in objs:
            ident = f"{obj['kind']}/{obj['metadata']['name']}"
            if "<no value>" in yaml.safe_dump(obj):
                fail(f"{ident}", "contains <no value>")
            if obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["kind"] == "ServiceMonitor":
                if not sm_schema_tried:
                    sm_schema, sm_schema_tried = servicemonitor_schema(tmp), True
                if sm_schema is None:
                    fail(f"crd {ident}", "no ServiceMonitor schema")
                    continue
                doc = tmp / f"{label.replace('/', '_')}-servicemonitor.yaml"
                doc.write_text(yaml.safe_dump(obj))
                res = subprocess.run([str(VENV_BIN / "check-jsonschema"), "--schemafile", str(sm_schema), str(doc)],
                                     capture_output=True, text=True)
                if res.returncode == 0:
                    ok(f"crd {ident} valid against prometheus-operator 0.80 ServiceMonitor schema (check-jsonschema, strict)")
                else:
                    fail(f"crd {ident}", (res.stdout + res.stderr).strip())
                continue
            if obj["apiVersion"].startswith("gateway.networking.k8s.io/"):
                skip(f"crd {ident}", "no offline Gateway API schema on PyPI; not validated")
                continue
            results = []
            for version in K8S_VERSIONS:
                try:
                    kv.validate(obj, version, strict=True)
                    results.append(None)
                except kv.ValidationError as e:
                    where = ".".join(str(p) for p in e.path)
                    results.append(f"{version}: {where}: {e.message}")
                except kv.SchemaNotFoundError as e:
                    results.append(f"{version}: {e.message}")
            errors = [r for r in results if r]
            if errors:
                fail(f"k8s {ident} ({src})", " | ".join(errors))
            else:
                ok(f"k8s {ident} strict on {', '.join(K8S_VERSIONS)}")
    return rendered


# --- herald.toml ------------------------------------------------------------------------------

def herald_binary() -> Path | None:
    env = os.environ.get("HERALD_BIN")
    candidates = [Path(env)] if env else [REPO / "target/release/herald", REPO / "target/debug/herald"]
    return next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


def check_config(rendered: dict[str, list[tuple[str, dict]]]) -> None:
    section("herald.toml in the config Secret")
    binary = herald_binary()
    for label, objs in rendered.items():
        secrets = [o for _, o in objs if o["kind"] == "Secret" and "herald.toml" in (o.get("stringData") or {})]
        if not secrets:
            ok(f"{label}: no config Secret rendered (config.existingSecret)")
            continue
        text = secrets[0]["stringData"]["herald.toml"]
        try:
            parsed = tomllib.loads(text)
            ok(f"{label}: herald.toml parses ({', '.join(sorted(parsed))})")
        except tomllib.TOMLDecodeError as e:
            fail(f"{label}: herald.toml parses", str(e))
            continue
        if binary is None:
            skip(f"{label}: herald config check", "no herald binary (build it or set HERALD_BIN)")
            continue
        sources = list((REPO / "src" / "config").glob("*.rs"))
        if not os.environ.get("HERALD_BIN") and sources and max(p.stat().st_mtime for p in sources) > binary.stat().st_mtime:
            skip(f"{label}: herald config check", f"{binary.relative_to(REPO)} is older than src/config (rebuild it, or set HERALD_BIN)")
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write(text)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp"}
        res = subprocess.run([str(binary), "config", "check", "--config", f.name], capture_output=True, text=True, env=env)
        os.unlink(f.name)
        message = (res.stderr or res.stdout).strip()
        if res.returncode == 0:
            ok(f"{label}: herald config check accepts it")
        elif "adapter" in parsed and re.search(r"unknown field `adapter`", message):
            skip(f"{label}: herald config check", "this herald build has no [adapter] section yet (Redis adapter pending)")
        else:
            fail(f"{label}: herald config check", message)


# --- chart contract ---------------------------------------------------------------------------

def check_contract(chart: helm.Chart, rendered: dict[str, list[tuple[str, dict]]]) -> None:
    section("chart contract")
    for label, path in values_files():
        if label not in rendered:
            continue
        values = chart.merge_values(load_values(path))
        objs = [o for _, o in rendered[label]]
        dep = next((o for o in objs if o["kind"] == "Deployment"), None)
        if dep is None:
            fail(f"{label}: Deployment", "missing")
            continue
        pod = dep["spec"]["template"]["spec"]
        c = pod["containers"][0]
        problems = []
        d = values["drain"]
        grace = pod.get("terminationGracePeriodSeconds")
        if grace != d["preStopSleepSeconds"] + d["windowSeconds"] + d["marginSeconds"] + 5:
            problems.append(f"terminationGracePeriodSeconds {grace} != preStop + window + margin + 5")
        if not grace or grace <= d["windowSeconds"] + d["preStopSleepSeconds"]:
            problems.append("grace period does not exceed preStop + drain window")
        pre = c.get("lifecycle", {}).get("preStop", {})
        sleep = pre.get("sleep", {}).get("seconds") or (pre.get("exec", {}).get("command") or [None, None])[1]
        if str(sleep) != str(d["preStopSleepSeconds"]):
            problems.append("preStop does not sleep drain.preStopSleepSeconds")
        secret = next((o for o in objs if o["kind"] == "Secret" and "herald.toml" in (o.get("stringData") or {})), None)
        if secret is not None:
            server = tomllib.loads(secret["stringData"]["herald.toml"])["server"]
            if server.get("drain_window_seconds") != d["windowSeconds"]:
                problems.append("[server] drain_window_seconds != drain.windowSeconds")
            if server.get("shutdown_grace_seconds") != d["windowSeconds"] + d["marginSeconds"]:
                problems.append("[server] shutdown_grace_seconds != window + margin")
            if grace <= d["preStopSleepSeconds"] + server.get("shutdown_grace_seconds", 0):
                problems.append("kubelet grace does not exceed preStop + herald's shutdown_grace_seconds")
        prefix = values["config"]["server"].get("path_prefix", "")
        if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != f"{prefix}/healthz":
            problems.append("liveness probe is not GET {prefix}/healthz")
        if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != f"{prefix}/readyz":
            problems.append("readiness probe is not GET {prefix}/readyz")
        sc, psc = c.get("securityContext", {}), pod.get("securityContext", {})
        if not psc.get("runAsNonRoot") or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append("pod is not runAsNonRoot with seccomp RuntimeDefault")
        if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation") is not False \
                or "ALL" not in sc.get("capabilities", {}).get("drop", []):
            problems.append("container is not read-only / no-escalation / drop ALL")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        if ports.get("http") != values["containerPort"]:
            problems.append("no port named http")
        if values["metrics"]["enabled"] and ports.get("metrics") != values["metrics"]["port"]:
            problems.append("no port named metrics")
        annotations = dep["spec"]["template"]["metadata"].get("annotations") or {}
        if not values["config"]["existingSecret"] and "checksum/config" not in annotations:
            problems.append("no checksum/config annotation")
        if c.get("args") != ["--config", "/etc/herald/herald.toml"]:
            problems.append("args are not --config /etc/herald/herald.toml")
        for ing in (o for o in objs if o["kind"] == "Ingress"):
            ann = ing["metadata"].get("annotations") or {}
            if values["ingress"]["nginxWebSocketAnnotations"]:
                for k in ("proxy-read-timeout", "proxy-send-timeout"):
                    if int(ann.get(f"nginx.ingress.kubernetes.io/{k}", "0")) < 3600:
                        problems.append(f"ingress {k} below 3600")
        tests = [o for o in objs if (o["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"]
        if values["tests"]["enabled"] and not tests:
            problems.append("no helm test pod")
        if problems:
            fail(f"{label}: contract", "; ".join(problems))
        else:
            ok(f"{label}: grace {grace}s = {d['preStopSleepSeconds']}+{d['windowSeconds']}+{d['marginSeconds']}+5, "
               f"probes {prefix}/healthz {prefix}/readyz, non-root read-only, ports {sorted(ports)}")


# --- dashboard --------------------------------------------------------------------------------

def readme_contract() -> set[str] | None:
    text = (CHART / "README.md").read_text()
    m = re.search(r"<!-- metrics-contract:start -->(.*?)<!-- metrics-contract:end -->", text, re.S)
    return set(re.findall(r"`(herald_[a-z0-9_]+)`", m.group(1))) if m else None


def promql_for_parsing(expr: str) -> str:
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", ".*", expr)


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(promql_for_parsing(expr)), visit)
    return names


def base_metric(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in HISTOGRAMS:
            return name[: -len(suffix)]
    return name


def check_dashboard(rendered: dict[str, list[tuple[str, dict]]]) -> None:
    section("Grafana dashboard")
    listed = readme_contract()
    if listed is None:
        fail("README metrics contract", "no <!-- metrics-contract:start/end --> block in helm/herald/README.md")
    elif listed != CONTRACT:
        fail("README metrics contract", f"README and validator differ: {sorted(listed ^ CONTRACT)}")
    else:
        ok(f"README metrics contract lists the same {len(CONTRACT)} metrics as the validator")
    path = CHART / "dashboards" / "herald.json"
    try:
        dash = json.loads(path.read_text())
        ok(f"{path.name} is JSON ({len(dash.get('panels', []))} panels)")
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{path.name} is JSON", str(e))
        return
    exprs: list[tuple[str, str]] = []

    def panels(items):
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    for p in panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            if t.get("expr"):
                exprs.append((p.get("title", "?"), t["expr"]))
    for var in dash.get("templating", {}).get("list", []):
        q = var.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.match(r"label_values\((.+),\s*([a-zA-Z_]+)\)$", q or "")
        if var.get("type") == "query" and m:
            exprs.append((f"variable {var['name']}", m.group(1)))
    if not exprs:
        fail("dashboard queries", "none found")
    used: set[str] = set()
    for title, expr in exprs:
        try:
            names = metric_names(expr)
        except ValueError as e:
            fail(f"PromQL parses [{title}]", f"{expr}: {e}")
            continue
        unknown = sorted(n for n in names if base_metric(n) not in CONTRACT)
        if unknown:
            fail(f"PromQL names only contract metrics [{title}]", f"unknown {unknown} in {expr}")
        else:
            used |= {base_metric(n) for n in names}
            ok(f"PromQL [{title}]: {', '.join(sorted(names))}")
    unused = sorted(CONTRACT - used)
    if unused:
        fail("dashboard covers the contract", f"metrics never graphed: {unused}")
    else:
        ok(f"dashboard graphs all {len(CONTRACT)} contract metrics")
    for label, objs in rendered.items():
        for _, o in objs:
            if o["kind"] == "ConfigMap" and "herald.json" in (o.get("data") or {}):
                if json.loads(o["data"]["herald.json"]) == dash:
                    ok(f"{label}: dashboard ConfigMap carries dashboards/herald.json ({o['metadata'].get('labels', {}).get('grafana_dashboard') and 'grafana_dashboard label'})")
                else:
                    fail(f"{label}: dashboard ConfigMap", "differs from dashboards/herald.json")


def main() -> int:
    print(f"helm-python-sdk {helm.__version__} (Helm SDK {helm.helm_sdk_version()}), "
          f"kubernetes-validate versions {', '.join(K8S_VERSIONS)}")
    with helm.Chart.load(str(CHART)) as chart:
        meta = chart.metadata
        if meta.get("apiVersion") == "v2" and meta.get("name") == "herald":
            ok(f"Chart.yaml: {meta['name']} {meta['version']} (apiVersion v2, appVersion {meta.get('appVersion')})")
        else:
            fail("Chart.yaml", f"unexpected metadata {meta}")
        check_lint()
        check_schema(chart)
        rendered = check_render_and_k8s(chart)
        check_validators_are_strict(rendered)
        check_config(rendered)
        check_contract(chart, rendered)
        check_dashboard(rendered)
    print()
    print(f"chart: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
