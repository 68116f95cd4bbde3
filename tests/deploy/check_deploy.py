#!/usr/bin/env python3
"""Static checks of the deployment artifacts of workmail-pat-monitor.

Checks the Kubernetes manifests (deploy/kubernetes), the Grafana provisioning
examples (dashboards/provisioning), the dashboard JSON, the Prometheus rules,
the PrometheusRule copy of them, their runbook pages, the Alertmanager
configuration, the Dockerfile and the IAM policies against each other and
against the metrics the exporter exports, and the links of README.md and docs/.

Usage:
    tests/deploy/check_deploy.py [--dump-exprs FILE] [--binary PATH]

--dump-exprs FILE writes every dashboard panel query as a JSON list of
{"panel": title, "expr": expr}, Grafana variables ($organization,
$__rate_interval, ...) left as they are.

--binary PATH (or $WORKMAIL_PAT_MONITOR_BIN) is a built workmail-pat-monitor:
every *.toml of the ConfigMap is then validated with `check-config`; without
it that check is skipped.

Needs python3 (>= 3.11, for tomllib) and PyYAML. When promtool is on PATH the
PromQL of the dashboard is syntax-checked too; otherwise that check is skipped.
Prints one line per check and a summary line; exits 1 if any check failed.
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
PROVISIONING = ROOT / "dashboards" / "provisioning"
DASHBOARD = ROOT / "dashboards" / "workmail-pat-overview.json"
RULES = ROOT / "config" / "prometheus" / "rules.yml"
RUNBOOKS = ROOT / "docs" / "runbooks"
ALERTMANAGER = ROOT / "config" / "alertmanager" / "alertmanager.yml"
DOCKERFILE = ROOT / "Dockerfile"
IAM_READONLY = ROOT / "config" / "iam-policy-readonly.json"
IAM_CLEANUP = ROOT / "config" / "iam-policy-cleanup.json"

APP = "workmail-pat-monitor"
PORT = 9795
PORT_NAME = "metrics"
DASHBOARD_UID = "workmail-pat-overview"
# The default base of every runbook_url (gen-prometheusrule.py --runbook-base-url replaces it).
RUNBOOK_BASE = "https://github.com/example/workmail-pat-monitor/blob/main/docs/runbooks/"
AUDIENCES = {"owner", "ops"}
SEVERITIES = {"critical", "warning", "info"}
DATASOURCE_VARS = {"${datasource}", "$datasource"}

# The exporter's interface. Metrics with organization labels must be filtered
# by $organization in the dashboard.
ORG_METRICS = {
    "workmail_pat_token_expiry_timestamp_seconds",
    "workmail_pat_token_created_timestamp_seconds",
    "workmail_pat_token_last_used_timestamp_seconds",
    "workmail_pat_token_info",
    "workmail_pat_tokens",
    "workmail_pat_tokens_expiring",
    "workmail_pat_tokens_unused",
    "workmail_pat_tokens_never_used",
    "workmail_pat_tokens_by_owner_state",
    "workmail_pat_token_owners",
    "workmail_pat_organization_pat_enabled",
    "workmail_pat_organization_pat_lifetime_seconds",
    "workmail_pat_organization_up",
    "workmail_pat_organization_info",
    "workmail_pat_scan_last_success_timestamp_seconds",
    "workmail_pat_scan_duration_seconds",
    "workmail_pat_cleanup_candidates",
    "workmail_pat_cleanup_pending",
    "workmail_pat_cleanup_actions_total",
    "workmail_pat_cleanup_last_run_timestamp_seconds",
    "workmail_pat_token_deletion_eligible_timestamp_seconds",
}
PROCESS_METRICS = {
    "workmail_pat_scan_interval_seconds",
    "workmail_pat_api_requests_total",
    "workmail_pat_api_request_errors_total",
    "workmail_pat_monitor_build_info",
    "workmail_pat_shard_info",
    "workmail_pat_internal_errors_total",
    "workmail_pat_web_config_last_reload_successful",
    "workmail_pat_web_config_last_reload_success_timestamp_seconds",
    "workmail_pat_config_last_reload_successful",
    "workmail_pat_config_last_reload_success_timestamp_seconds",
    "workmail_pat_config_restart_required",
    "workmail_pat_discovery_up",
}
EXPORTED_METRICS = ORG_METRICS | PROCESS_METRICS
ALLOWED_METRICS = EXPORTED_METRICS | {"up", "time"}

EXPECTED_KINDS = {
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("batch/v1", "CronJob"),
    ("v1", "PersistentVolumeClaim"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
}
# deploy/kubernetes/alternatives: manifests that replace a shipped one.
ALTERNATIVE_KINDS = {
    ("apps/v1", "StatefulSet"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}
# Kinds the Kubernetes schemas do not know (CRDs of the Prometheus Operator).
CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
KUSTOMIZATION = ("kustomize.config.k8s.io/v1beta1", "Kustomization")

IAM_READ_ACTIONS = {
    "workmail:ListOrganizations",
    "workmail:ListUsers",
    "workmail:DescribeUser",
    "workmail:ListPersonalAccessTokens",
    "workmail:GetPersonalAccessTokenMetadata",
    "workmail:DescribeIdentityProviderConfiguration",
}
IAM_DELETE_ACTION = "workmail:DeletePersonalAccessToken"
# Actions without resource-level permissions (Service Authorization Reference).
IAM_UNSCOPED_ACTIONS = {"workmail:ListOrganizations"}
IAM_ORG_ARN = "arn:aws:workmail:*:*:organization/*"

PROMQL_KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "atan2",
}


class Fail(Exception):
    """A check failed."""


class Skip(Exception):
    """A check could not run here."""


def expect(cond, msg):
    if not cond:
        raise Fail(msg)


def rel(path):
    return str(pathlib.Path(path).relative_to(ROOT))


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------

class Artifacts:
    """Everything parsed once; a parse error is reported by the parse check."""

    def __init__(self):
        self.yaml_docs = {}  # path -> [documents]
        self.yaml_errors = {}
        for base in (ROOT / "deploy", PROVISIONING):
            for path in sorted(list(base.rglob("*.yaml")) + list(base.rglob("*.yml"))):
                try:
                    with open(path, encoding="utf-8") as fh:
                        self.yaml_docs[path] = [d for d in yaml.safe_load_all(fh) if d is not None]
                except (yaml.YAMLError, OSError) as err:
                    self.yaml_errors[path] = str(err)

    def k8s_objects(self):
        """The shipped manifests (deploy/kubernetes/*.yaml)."""
        for path, docs in self.yaml_docs.items():
            if path.parent != DEPLOY or path.name == "kustomization.yaml":
                continue
            for doc in docs:
                yield path, doc

    def alternatives(self):
        """The manifests of deploy/kubernetes/alternatives, by file name."""
        return {path.name: docs[0] for path, docs in self.yaml_docs.items()
                if path.parent == DEPLOY / "alternatives" and docs}

    def by_kind(self, kind):
        return [doc for _, doc in self.k8s_objects() if isinstance(doc, dict) and doc.get("kind") == kind]

    def one(self, kind):
        objs = self.by_kind(kind)
        expect(len(objs) == 1, f"expected exactly one {kind}, found {len(objs)}")
        return objs[0]


# ---------------------------------------------------------------------------
# Helpers for workloads
# ---------------------------------------------------------------------------

def pod_spec(obj):
    if obj["kind"] == "Deployment":
        return obj["spec"]["template"]["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    raise Fail(f"not a workload: {obj['kind']}")


def only_container(obj):
    containers = pod_spec(obj).get("containers") or []
    expect(len(containers) == 1, f"{obj['kind']}: expected one container, found {len(containers)}")
    return containers[0]


def config_path(container, command):
    args = list(container.get("command") or []) + list(container.get("args") or [])
    expect(args and args[0] == command, f"container args must start with {command!r}, got {args}")
    expect("--config" in args, f"container args lack --config: {args}")
    i = args.index("--config")
    expect(i + 1 < len(args), "--config without a value")
    return args[i + 1]


def check_security(obj):
    pod = pod_spec(obj)
    psc = pod.get("securityContext") or {}
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        csc = c.get("securityContext") or {}
        name = f"{obj['kind']}/{obj['metadata']['name']} container {c.get('name')}"

        def eff(key):
            return csc.get(key, psc.get(key))

        expect(eff("runAsNonRoot") is True, f"{name}: runAsNonRoot must be true")
        uid = eff("runAsUser")
        expect(uid is None or uid != 0, f"{name}: runAsUser must not be 0")
        expect(csc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem must be true")
        expect(csc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation must be false")
        expect(csc.get("privileged") in (None, False), f"{name}: must not be privileged")
        drop = ((csc.get("capabilities") or {}).get("drop")) or []
        expect("ALL" in drop, f"{name}: capabilities.drop must contain ALL")
        expect(not ((csc.get("capabilities") or {}).get("add")), f"{name}: must not add capabilities")
        seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        expect(seccomp == "RuntimeDefault", f"{name}: seccompProfile must be RuntimeDefault, got {seccomp}")


def check_resources(obj):
    c = only_container(obj)
    res = c.get("resources") or {}
    for section in ("requests", "limits"):
        for key in ("cpu", "memory"):
            expect(key in (res.get(section) or {}), f"{obj['kind']}: resources.{section}.{key} missing")


def check_config_mount(art, obj, path):
    """The --config file must come from a mounted key of an existing ConfigMap."""
    c = only_container(obj)
    directory, filename = os.path.split(path)
    mounts = [m for m in c.get("volumeMounts", []) if m.get("mountPath") == directory]
    expect(mounts, f"{obj['kind']}: nothing mounted at {directory}")
    volumes = {v["name"]: v for v in pod_spec(obj).get("volumes", [])}
    vol = volumes.get(mounts[0]["name"])
    expect(vol and "configMap" in vol, f"{obj['kind']}: {directory} is not a ConfigMap volume")
    cm_name = vol["configMap"]["name"]
    cms = {cm["metadata"]["name"]: cm for cm in art.by_kind("ConfigMap")}
    expect(cm_name in cms, f"{obj['kind']}: ConfigMap {cm_name} not defined")
    expect(filename in (cms[cm_name].get("data") or {}),
           f"{obj['kind']}: ConfigMap {cm_name} has no key {filename}")


def check_service_account(art, obj):
    sa = pod_spec(obj).get("serviceAccountName")
    names = {s["metadata"]["name"] for s in art.by_kind("ServiceAccount")}
    expect(sa in names, f"{obj['kind']}: serviceAccountName {sa!r} is not one of {sorted(names)}")


def subset(small, big):
    return all(big.get(k) == v for k, v in (small or {}).items())


# ---------------------------------------------------------------------------
# PromQL helpers
# ---------------------------------------------------------------------------

def metric_names(expr):
    """Metric names referenced by a PromQL expression (heuristic, no parser)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"'(?:[^'\\]|\\.)*'", "''", s)
    s = re.sub(r"`[^`]*`", "``", s)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\$\{[^}]*\}|\$\w+", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?[0-9a-z]+", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.:])[A-Za-z_:][A-Za-z0-9_:]*", s):
        name = m.group(0)
        if re.match(r"\s*\(", s[m.end():]):
            continue  # function or aggregation
        if name.lower() in PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


def substitute_grafana_vars(expr):
    """Make a dashboard query valid PromQL: durations for the interval variables, `.*` for the rest."""
    for var, value in (("$__rate_interval", "5m"), ("$__interval", "1m"), ("$__range", "1h")):
        expr = expr.replace(var, value)
    return re.sub(r"\$\{\w+\}|\$[A-Za-z_]\w*", ".*", expr)


# ---------------------------------------------------------------------------
# Dashboard helpers
# ---------------------------------------------------------------------------

def all_panels(panels):
    for p in panels or []:
        yield p
        yield from all_panels(p.get("panels"))


def dashboard_exprs(dash):
    out = []
    for p in all_panels(dash.get("panels")):
        for t in p.get("targets") or []:
            out.append((p.get("title", f"panel {p.get('id')}"), t))
    return out


def walk(node, path="$"):
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

def checks(art, dump_exprs, binary):
    c = []

    def check(fn):
        c.append(fn)
        return fn

    @check
    def yaml_files_parse():
        """Every YAML file under deploy/ and dashboards/provisioning parses."""
        expect(art.yaml_docs or art.yaml_errors, "no YAML files found")
        expect(not art.yaml_errors, "; ".join(f"{rel(p)}: {e}" for p, e in art.yaml_errors.items()))

    @check
    def manifests_kinds_and_api_versions():
        """Each manifest has a known apiVersion/kind, a name and the app label; all kinds are present."""
        seen = set()
        for path, doc in art.k8s_objects():
            expect(isinstance(doc, dict), f"{rel(path)}: document is not a mapping")
            key = (doc.get("apiVersion"), doc.get("kind"))
            expect(key in EXPECTED_KINDS, f"{rel(path)}: unexpected apiVersion/kind {key}")
            meta = doc.get("metadata") or {}
            expect(meta.get("name"), f"{rel(path)}: {key[1]} without metadata.name")
            expect((meta.get("labels") or {}).get("app.kubernetes.io/name") == APP,
                   f"{rel(path)}: {key[1]}/{meta.get('name')} lacks label app.kubernetes.io/name={APP}")
            expect("namespace" not in meta,
                   f"{rel(path)}: {key[1]}/{meta['name']} hard-codes a namespace (set it in kustomization.yaml)")
            seen.add(key)
        missing = EXPECTED_KINDS - seen
        expect(not missing, f"missing kinds: {sorted(k for _, k in missing)}")

    @check
    def kustomization_lists_every_manifest():
        """kustomization.yaml lists exactly the manifests of deploy/kubernetes and the workload image."""
        path = DEPLOY / "kustomization.yaml"
        expect(path in art.yaml_docs, "deploy/kubernetes/kustomization.yaml missing")
        k = art.yaml_docs[path][0]
        expect((k.get("apiVersion"), k.get("kind")) == KUSTOMIZATION, f"unexpected apiVersion/kind in {rel(path)}")
        resources = k.get("resources") or []
        for r in resources:
            expect((DEPLOY / r).is_file(), f"resource {r} does not exist")
        manifests = {p.name for p in art.yaml_docs if p.parent == DEPLOY and p.name != "kustomization.yaml"}
        expect(set(resources) == manifests, f"resources {sorted(resources)} != manifests {sorted(manifests)}")
        image = only_container(art.one("Deployment"))["image"]
        repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
        names = [i.get("name") for i in k.get("images") or []]
        expect(repo in names, f"kustomization images {names} do not include {repo}")

    @check
    def service_accounts_document_irsa():
        """Every ServiceAccount carries the IRSA annotation, and the file explains it."""
        sas = art.by_kind("ServiceAccount")
        expect(sas, "no ServiceAccount")
        for sa in sas:
            ann = (sa["metadata"].get("annotations") or {}).get("eks.amazonaws.com/role-arn", "")
            expect(ann.startswith("arn:aws:iam::"),
                   f"ServiceAccount {sa['metadata']['name']}: eks.amazonaws.com/role-arn missing or not an IAM role ARN")
        text = (DEPLOY / "serviceaccount.yaml").read_text(encoding="utf-8")
        comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
        expect("eks.amazonaws.com/role-arn" in comments, "serviceaccount.yaml does not document the IRSA annotation")

    @check
    def configmap_toml_parses():
        """Every *.toml key of every ConfigMap is valid TOML."""
        cms = art.by_kind("ConfigMap")
        expect(cms, "no ConfigMap")
        n = 0
        for cm in cms:
            for key, value in (cm.get("data") or {}).items():
                if key.endswith(".toml"):
                    try:
                        tomllib.loads(value)
                    except tomllib.TOMLDecodeError as err:
                        raise Fail(f"ConfigMap {cm['metadata']['name']} key {key}: {err}") from err
                    n += 1
        expect(n, "no *.toml key in any ConfigMap")

    @check
    def configmap_check_config():
        """Every *.toml of the ConfigMap passes `workmail-pat-monitor check-config`."""
        if not binary:
            raise Skip("no --binary / WORKMAIL_PAT_MONITOR_BIN given")
        for cm in art.by_kind("ConfigMap"):
            for key, value in (cm.get("data") or {}).items():
                if not key.endswith(".toml"):
                    continue
                with tempfile.TemporaryDirectory() as tmp:
                    path = pathlib.Path(tmp) / key
                    path.write_text(value, encoding="utf-8")
                    proc = subprocess.run([binary, "check-config", "--config", str(path)],
                                          capture_output=True, text=True, check=False)
                expect(proc.returncode == 0,
                       f"ConfigMap {cm['metadata']['name']} key {key}: {(proc.stderr or proc.stdout).strip()}")

    @check
    def deployment_container():
        """The Deployment runs `run --config`, exposes 9795 as `metrics`, probes /healthz and /readyz."""
        d = art.one("Deployment")
        expect(subset(d["spec"]["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"]),
               "selector.matchLabels do not match the pod template labels")
        c = only_container(d)
        ports = c.get("ports") or []
        expect(len(ports) == 1 and ports[0].get("name") == PORT_NAME and ports[0].get("containerPort") == PORT,
               f"expected one container port {PORT_NAME}:{PORT}, got {ports}")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = (c.get(probe) or {}).get("httpGet") or {}
            expect(get.get("path") == path, f"{probe} must GET {path}, got {get.get('path')}")
            expect(get.get("port") in (PORT_NAME, PORT), f"{probe} port must be {PORT_NAME} or {PORT}")
        path = config_path(c, "run")
        check_config_mount(art, d, path)
        check_service_account(art, d)
        check_resources(d)

    @check
    def deployment_security_context():
        """Deployment: non-root, read-only root filesystem, no privilege escalation, ALL caps dropped, seccomp."""
        check_security(art.one("Deployment"))

    @check
    def cronjob_runs_once():
        """The CronJob runs `once --config`, cannot overlap, and uses the Deployment's image."""
        cj = art.one("CronJob")
        spec = cj["spec"]
        expect(spec.get("schedule"), "CronJob without schedule")
        expect(spec.get("concurrencyPolicy") == "Forbid", "CronJob concurrencyPolicy must be Forbid")
        expect(pod_spec(cj).get("restartPolicy") in ("Never", "OnFailure"), "restartPolicy must be Never or OnFailure")
        c = only_container(cj)
        check_config_mount(art, cj, config_path(c, "once"))
        check_service_account(art, cj)
        check_resources(cj)
        deploy_image = only_container(art.one("Deployment"))["image"]
        expect(c["image"] == deploy_image, f"CronJob image {c['image']} != Deployment image {deploy_image}")

    @check
    def cronjob_ledger_is_persistent():
        """The enforce CronJob's ledger (cleanup.audit_log) is on a mounted PersistentVolumeClaim that the kustomization ships."""
        cj = art.one("CronJob")
        c = only_container(cj)
        path = config_path(c, "once")
        cms = {cm["metadata"]["name"]: cm for cm in art.by_kind("ConfigMap")}
        data = next(iter(cms.values())).get("data") or {}
        cfg = tomllib.loads(data[os.path.basename(path)])
        cleanup = cfg.get("cleanup") or {}
        expect(cleanup.get("mode") == "enforce", "the CronJob's configuration is not in enforce mode")
        ledger = cleanup.get("audit_log")
        expect(ledger, "the CronJob's enforce configuration has no cleanup.audit_log")
        directory = os.path.dirname(ledger)
        mounts = [m for m in c.get("volumeMounts", []) if m.get("mountPath") == directory]
        expect(mounts, f"CronJob: nothing mounted at {directory} (the ledger's directory)")
        expect(not mounts[0].get("readOnly"), f"CronJob: {directory} is mounted read-only")
        volumes = {v["name"]: v for v in pod_spec(cj).get("volumes", [])}
        vol = volumes.get(mounts[0]["name"]) or {}
        claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
        expect(claim, f"CronJob: {directory} is not a PersistentVolumeClaim (an emptyDir would lose the ledger)")
        claims = {p["metadata"]["name"] for p in art.by_kind("PersistentVolumeClaim")}
        expect(claim in claims, f"CronJob: PersistentVolumeClaim {claim} is not shipped")
        fs_group = (pod_spec(cj).get("securityContext") or {}).get("fsGroup")
        expect(fs_group is not None, "CronJob: set securityContext.fsGroup so the ledger volume is writable")

    @check
    def cronjob_security_context():
        """CronJob: same security requirements as the Deployment."""
        check_security(art.one("CronJob"))

    @check
    def images_pinned_and_consistent():
        """Workload images carry an explicit, non-latest tag and agree with each other."""
        images = {only_container(o)["image"] for o in art.by_kind("Deployment") + art.by_kind("CronJob")}
        expect(len(images) == 1, f"workloads use different images: {sorted(images)}")
        image = images.pop()
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        expect(tag and tag != "latest", f"image {image} must have an explicit tag other than latest")

    @check
    def service_port():
        """The Service exposes port 9795 named `metrics` and selects the Deployment's pods."""
        s = art.one("Service")
        ports = s["spec"].get("ports") or []
        expect(any(p.get("name") == PORT_NAME and p.get("port") == PORT and p.get("targetPort") in (PORT_NAME, PORT)
                   for p in ports), f"Service has no port {PORT_NAME}:{PORT} -> {PORT_NAME}: {ports}")
        pod_labels = art.one("Deployment")["spec"]["template"]["metadata"]["labels"]
        expect(s["spec"].get("selector") and subset(s["spec"]["selector"], pod_labels),
               "Service selector does not match the Deployment's pod labels")

    @check
    def servicemonitor_targets_service():
        """The ServiceMonitor selects the Service and scrapes /metrics on port `metrics`."""
        sm = art.one("ServiceMonitor")
        svc = art.one("Service")
        expect(subset(sm["spec"]["selector"].get("matchLabels"), svc["metadata"]["labels"]),
               "ServiceMonitor selector does not match the Service labels")
        eps = sm["spec"].get("endpoints") or []
        expect(eps, "ServiceMonitor without endpoints")
        for ep in eps:
            expect(ep.get("port") == PORT_NAME, f"endpoint port must be {PORT_NAME!r}, got {ep.get('port')!r}")
            expect(ep.get("path", "/metrics") == "/metrics", f"endpoint path must be /metrics, got {ep.get('path')}")

    @check
    def networkpolicy_admits_only_prometheus():
        """The NetworkPolicy selects the exporter's pods and admits only Prometheus, only to the metrics port."""
        np = art.one("NetworkPolicy")
        pod_labels = art.one("Deployment")["spec"]["template"]["metadata"]["labels"]
        expect(subset(np["spec"]["podSelector"].get("matchLabels"), pod_labels),
               "NetworkPolicy podSelector does not match the Deployment's pod labels")
        expect(np["spec"].get("policyTypes") == ["Ingress"], "policyTypes must be [Ingress]")
        rules = np["spec"].get("ingress") or []
        expect(len(rules) == 1, f"expected one ingress rule, found {len(rules)}")
        peers = rules[0].get("from") or []
        expect(peers, "an ingress rule without `from` admits everyone")
        for peer in peers:
            expect("ipBlock" not in peer, "an ipBlock peer admits more than Prometheus")
            expect(peer.get("namespaceSelector", {}).get("matchLabels") and peer.get("podSelector", {}).get("matchLabels"),
                   f"peer {peer} must name both the namespace and the pods")
        ports = rules[0].get("ports") or []
        expect(ports and all(p.get("port") in (PORT_NAME, PORT) for p in ports),
               f"ingress must be limited to port {PORT_NAME}/{PORT}: {ports}")

    @check
    def podmonitor_targets_pods():
        """alternatives/podmonitor.yaml selects the Deployment's pods, scrapes /metrics on `metrics` and keeps the job name."""
        pm = art.alternatives().get("podmonitor.yaml")
        expect(pm and (pm.get("apiVersion"), pm.get("kind")) in ALTERNATIVE_KINDS and pm["kind"] == "PodMonitor",
               "deploy/kubernetes/alternatives/podmonitor.yaml is not a PodMonitor")
        pod_labels = art.one("Deployment")["spec"]["template"]["metadata"]["labels"]
        expect(subset(pm["spec"]["selector"].get("matchLabels"), pod_labels),
               "PodMonitor selector does not match the Deployment's pod labels")
        expect(pod_labels.get(pm["spec"].get("jobLabel", "")) == APP,
               f"jobLabel must name a pod label whose value is {APP} (the job name the alerts expect)")
        eps = pm["spec"].get("podMetricsEndpoints") or []
        expect(eps and all(ep.get("port") == PORT_NAME and ep.get("path", "/metrics") == "/metrics" for ep in eps),
               f"podMetricsEndpoints must scrape /metrics on port {PORT_NAME}: {eps}")
        container_ports = [p.get("name") for p in only_container(art.one("Deployment")).get("ports") or []]
        expect(PORT_NAME in container_ports, f"the container has no port named {PORT_NAME}")

    @check
    def tls_servicemonitor_verifies_and_authenticates():
        """alternatives/servicemonitor-tls.yaml scrapes over HTTPS with a CA, a server name and basic auth from Secrets."""
        sm = art.alternatives().get("servicemonitor-tls.yaml")
        expect(sm and sm.get("kind") == "ServiceMonitor", "deploy/kubernetes/alternatives/servicemonitor-tls.yaml is not a ServiceMonitor")
        expect(subset(sm["spec"]["selector"].get("matchLabels"), art.one("Service")["metadata"]["labels"]),
               "TLS ServiceMonitor selector does not match the Service labels")
        for ep in sm["spec"].get("endpoints") or []:
            expect(ep.get("scheme") == "https", "scheme must be https")
            tls = ep.get("tlsConfig") or {}
            expect(not tls.get("insecureSkipVerify"), "insecureSkipVerify defeats TLS")
            expect(tls.get("ca", {}).get("secret", {}).get("key"), "tlsConfig.ca must come from a Secret")
            expect(tls.get("serverName"), "tlsConfig.serverName must be set")
            auth = ep.get("basicAuth") or {}
            expect(auth.get("username", {}).get("name") and auth.get("password", {}).get("name"),
                   "basicAuth username and password must come from a Secret")

    @check
    def sharded_statefulset_takes_the_shard_from_the_ordinal():
        """alternatives/statefulset-sharded.yaml passes --shard from the pod's ordinal and --total-shards equal to its replicas."""
        ss = art.alternatives().get("statefulset-sharded.yaml")
        expect(ss and ss.get("kind") == "StatefulSet", "deploy/kubernetes/alternatives/statefulset-sharded.yaml is not a StatefulSet")
        c = only_container({"kind": "Deployment", "spec": {"template": ss["spec"]["template"]}})
        args = list(c.get("args") or [])
        expect(args[:1] == ["run"], f"args must start with run: {args}")
        expect("--shard=$(SHARD)" in args, f"args lack --shard=$(SHARD): {args}")
        expect(f"--total-shards={ss['spec']['replicas']}" in args,
               f"--total-shards must equal replicas ({ss['spec']['replicas']}): {args}")
        env = {e["name"]: e for e in c.get("env") or []}
        field = env.get("SHARD", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        expect(field == "metadata.labels['apps.kubernetes.io/pod-index']",
               f"SHARD must come from the pod-index label, got {field}")
        dep = only_container(art.one("Deployment"))
        expect(c.get("image") == dep.get("image"), "the StatefulSet uses another image than the Deployment")
        check_security({"kind": "Deployment", "metadata": ss["metadata"], "spec": {"template": ss["spec"]["template"]}})

    @check
    def manifests_match_kubernetes_schemas():
        """Every manifest of a built-in kind validates (strict) against the Kubernetes OpenAPI schemas (kubernetes-validate)."""
        try:
            import kubernetes_validate
        except ImportError:
            if os.environ.get("WORKMAIL_PAT_REQUIRE_KUBERNETES_VALIDATE"):
                raise Fail("kubernetes-validate is not installed (pip install kubernetes-validate)")
            raise Skip("kubernetes-validate is not installed")
        version = kubernetes_validate.latest_version()
        checked = 0
        for path, docs in art.yaml_docs.items():
            if not path.is_relative_to(DEPLOY):
                continue
            for doc in docs:
                if not isinstance(doc, dict) or doc.get("kind") in CRD_KINDS | {"Kustomization"}:
                    continue
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as err:
                    raise Fail(f"{rel(path)}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {err.message}")
                checked += 1
        expect(checked >= len(EXPECTED_KINDS) - 2, f"only {checked} manifests validated")

    @check
    def prometheusrule_equals_rules_yml():
        """The PrometheusRule spec is exactly config/prometheus/rules.yml."""
        pr = art.one("PrometheusRule")
        with open(RULES, encoding="utf-8") as fh:
            rules = yaml.safe_load(fh)
        expect(pr.get("spec") == rules,
               "deploy/kubernetes/prometheusrule.yaml differs from config/prometheus/rules.yml; "
               "run deploy/kubernetes/gen-prometheusrule.py")

    @check
    def prometheusrule_is_generated():
        """prometheusrule.yaml is byte-for-byte what gen-prometheusrule.py writes."""
        proc = subprocess.run([sys.executable, str(DEPLOY / "gen-prometheusrule.py"), "--check"],
                              capture_output=True, text=True, check=False)
        expect(proc.returncode == 0, (proc.stderr or proc.stdout).strip())

    @check
    def alert_rules_conventions():
        """Every alert has a severity, an audience and summary, description and runbook_url annotations."""
        with open(RULES, encoding="utf-8") as fh:
            rules = yaml.safe_load(fh)
        alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
        expect(alerts, "no alerts in rules.yml")
        for r in alerts:
            name = r["alert"]
            labels = r.get("labels") or {}
            expect(labels.get("severity") in SEVERITIES, f"{name}: severity not in {SEVERITIES}")
            expect(labels.get("audience") in AUDIENCES, f"{name}: audience not in {AUDIENCES}")
            ann = r.get("annotations") or {}
            for key in ("summary", "description", "runbook_url"):
                expect(ann.get(key), f"{name}: annotation {key} missing")

    @check
    def runbook_urls_resolve():
        """Every runbook_url is <base><alertname>.md and that page exists in docs/runbooks/; no page is orphaned."""
        with open(RULES, encoding="utf-8") as fh:
            rules = yaml.safe_load(fh)
        names = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
        for r in (r for g in rules["groups"] for r in g["rules"] if "alert" in r):
            url = (r.get("annotations") or {}).get("runbook_url", "")
            expect(url.startswith(RUNBOOK_BASE), f"{r['alert']}: runbook_url {url!r} is not under {RUNBOOK_BASE}")
            page = RUNBOOKS / url[len(RUNBOOK_BASE):]
            expect(page.name == f"{r['alert']}.md", f"{r['alert']}: runbook_url {url!r} is not {r['alert']}.md")
            expect(page.is_file(), f"{r['alert']}: runbook page {rel(page)} does not exist")
            title = page.read_text(encoding="utf-8").splitlines()[0]
            expect(title == f"# {r['alert']}", f"{rel(page)}: first line must be '# {r['alert']}', got {title!r}")
        pages = {p.stem for p in RUNBOOKS.glob("*.md")}
        orphans = sorted(pages - set(names))
        expect(not orphans, f"runbook pages without an alert: {orphans}")

    @check
    def docs_links_resolve():
        """Every relative link in README.md and docs/ names an existing file and, with #anchor, one of its headings."""

        def anchors(path):
            # GitHub's heading ids: lower case, punctuation dropped, spaces as hyphens.
            return {re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
                    for m in re.finditer(r"^#+ (.*)$", path.read_text(encoding="utf-8"), re.M)}

        broken = []
        for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
            text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
            for link in re.findall(r"\]\(([^)\s]+)\)", text):
                if re.match(r"[a-z]+:", link):
                    continue
                target, _, anchor = link.partition("#")
                path = (page.parent / target).resolve() if target else page
                if not path.exists():
                    broken.append(f"{rel(page)}: {link} (no such file)")
                elif anchor and path.is_file() and anchor not in anchors(path):
                    broken.append(f"{rel(page)}: {link} (no such heading)")
        expect(not broken, "; ".join(broken))

    @check
    def alertmanager_matches_rules():
        """alertmanager.yml sends audience="owner" to the `email` label, one group per address, and names only existing alerts."""
        with open(RULES, encoding="utf-8") as fh:
            rules = yaml.safe_load(fh)
        alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
        with open(ALERTMANAGER, encoding="utf-8") as fh:
            am = yaml.safe_load(fh)
        receivers = {r["name"]: r for r in am.get("receivers") or []}
        owner = [r for r in am["route"].get("routes") or [] if 'audience="owner"' in (r.get("matchers") or [])]
        expect(len(owner) == 1, f"expected one route matching audience=\"owner\", found {len(owner)}")
        expect(owner[0].get("group_by") == ["email"], f"owner route must group_by [email], got {owner[0].get('group_by')}")
        emails = receivers.get(owner[0].get("receiver"), {}).get("email_configs") or []
        expect(emails and all(e.get("to") == "{{ .GroupLabels.email }}" for e in emails),
               "the owner receiver must mail to '{{ .GroupLabels.email }}'")
        ops = receivers.get(am["route"].get("receiver"), {})
        expect(ops.get("name") == "ops", f"the default receiver must be ops, got {am['route'].get('receiver')!r}")
        named = set()
        for node in [am["route"], *(am["route"].get("routes") or []), *(am.get("inhibit_rules") or [])]:
            for key in ("matchers", "source_matchers", "target_matchers"):
                for m in node.get(key) or []:
                    found = re.fullmatch(r'\s*alertname\s*=\s*"?([^"]+)"?\s*', m)
                    if found:
                        named.add(found.group(1))
        expect(named <= alerts, f"alertmanager.yml names alerts that rules.yml does not define: {sorted(named - alerts)}")

    @check
    def rules_use_exported_metrics():
        """rules.yml only refers to exported metrics, `up` and its own recording rules."""
        with open(RULES, encoding="utf-8") as fh:
            rules = yaml.safe_load(fh)
        records = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
        for g in rules["groups"]:
            for r in g["rules"]:
                unknown = metric_names(str(r["expr"])) - ALLOWED_METRICS - records
                expect(not unknown, f"{r.get('alert') or r.get('record')}: unknown metrics {sorted(unknown)}")

    @check
    def grafana_datasource_provisioning():
        """dashboards/provisioning/datasource.yaml provisions a Prometheus data source."""
        path = PROVISIONING / "datasource.yaml"
        expect(path in art.yaml_docs, f"{rel(path)} missing")
        doc = art.yaml_docs[path][0]
        expect(doc.get("apiVersion") == 1, "apiVersion must be 1")
        dss = doc.get("datasources") or []
        expect(any(ds.get("type") == "prometheus" for ds in dss), "no data source of type prometheus")
        for ds in dss:
            for key in ("name", "type", "url"):
                expect(ds.get(key), f"data source without {key}")

    @check
    def grafana_dashboard_provisioning():
        """dashboards/provisioning/dashboards.yaml has a file provider with a path."""
        path = PROVISIONING / "dashboards.yaml"
        expect(path in art.yaml_docs, f"{rel(path)} missing")
        doc = art.yaml_docs[path][0]
        expect(doc.get("apiVersion") == 1, "apiVersion must be 1")
        providers = doc.get("providers") or []
        expect(providers, "no providers")
        for p in providers:
            expect(p.get("name"), "provider without name")
            expect(p.get("type", "file") == "file", "provider type must be file")
            expect((p.get("options") or {}).get("path"), f"provider {p.get('name')}: options.path missing")

    dash = {}

    @check
    def dashboard_parses():
        """The dashboard is valid JSON with the stable uid and a recent schemaVersion."""
        try:
            dash.update(json.loads(DASHBOARD.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as err:
            raise Fail(f"{rel(DASHBOARD)}: {err}") from err
        expect(dash.get("uid") == DASHBOARD_UID, f"uid must be {DASHBOARD_UID!r}, got {dash.get('uid')!r}")
        expect(isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= 36,
               f"schemaVersion {dash.get('schemaVersion')} is too old")
        expect(dash.get("title"), "dashboard without title")
        expect("__inputs" not in dash, "dashboard has __inputs; use the ${datasource} variable instead")

    @check
    def dashboard_variables():
        """`datasource`, `account`, `region` and `organization` (narrowed by account and region) variables exist."""
        expect(dash, "dashboard did not parse")
        variables = {v.get("name"): v for v in (dash.get("templating") or {}).get("list", [])}
        ds = variables.get("datasource")
        expect(ds and ds.get("type") == "datasource" and ds.get("query") == "prometheus",
               "variable `datasource` must be of type datasource with query prometheus")
        org = variables.get("organization")
        expect(org and org.get("type") == "query", "variable `organization` of type query missing")
        query = org.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        expect(re.fullmatch(r'\s*label_values\(\s*workmail_pat_organization_info\{account_id=~"\$account",\s*region=~"\$region"\}\s*,\s*organization\s*\)\s*', query or ""),
               f"organization variable query must list the organizations of $account and $region from workmail_pat_organization_info, got {query!r}")
        expect(org.get("multi") is True and org.get("includeAll") is True, "organization must be multi-value with All")
        expect(org.get("allValue") in (None, ""),
               "organization's All must be the organizations listed (no allValue), or $account/$region would not narrow it")
        names = list(variables)
        for name, label in (("account", "account_id"), ("region", "region")):
            v = variables.get(name)
            expect(v and v.get("type") == "query", f"variable `{name}` of type query missing")
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            expect(q == f"label_values(workmail_pat_organization_info, {label})",
                   f"{name} variable query must be label_values(workmail_pat_organization_info, {label}), got {q!r}")
            expect(v.get("multi") is True and v.get("includeAll") is True and v.get("allValue") == ".*",
                   f"{name} must be multi-value with All = .* (organizations without a known account have an empty account_id)")
            expect(names.index(name) < names.index("organization"), f"{name} must come before organization, which depends on it")
        expect((org.get("datasource") or {}).get("uid") in DATASOURCE_VARS, "organization variable must use ${datasource}")

    @check
    def dashboard_no_hardcoded_datasource():
        """No data source is referenced by anything but the ${datasource} variable."""
        expect(dash, "dashboard did not parse")
        for path, key, value in walk(dash):
            if key != "datasource":
                continue
            if isinstance(value, dict):
                expect(value.get("uid") in DATASOURCE_VARS, f"{path}.datasource uid {value.get('uid')!r} is hard-coded")
            elif value is not None:
                expect(value in DATASOURCE_VARS, f"{path}.datasource {value!r} is hard-coded")
        for p in all_panels(dash.get("panels")):
            if p.get("type") != "row":
                expect((p.get("datasource") or {}).get("uid") in DATASOURCE_VARS,
                       f"panel {p.get('title')!r} does not use ${{datasource}}")

    @check
    def dashboard_panels_layout():
        """Panel ids are unique and every panel has a title and a gridPos within 24 columns."""
        expect(dash, "dashboard did not parse")
        ids = [p.get("id") for p in all_panels(dash.get("panels"))]
        expect(len(ids) == len(set(ids)) and None not in ids, "panel ids missing or not unique")
        for p in all_panels(dash.get("panels")):
            expect(p.get("title"), f"panel {p.get('id')} without title")
            g = p.get("gridPos") or {}
            expect(all(k in g for k in "hwxy") and g["x"] + g["w"] <= 24, f"panel {p.get('title')!r}: bad gridPos {g}")

    @check
    def dashboard_targets():
        """Every target has an expr that uses known metrics and filters by $organization where it can."""
        expect(dash, "dashboard did not parse")
        targets = dashboard_exprs(dash)
        expect(targets, "dashboard has no queries")
        for title, t in targets:
            expr = t.get("expr")
            expect(isinstance(expr, str) and expr.strip(), f"panel {title!r} target {t.get('refId')}: no expr")
            names = metric_names(expr)
            unknown = names - ALLOWED_METRICS
            expect(not unknown, f"panel {title!r}: unknown metrics {sorted(unknown)} in {expr}")
            expect(names, f"panel {title!r}: no metric in {expr}")
            if names & ORG_METRICS:
                expect("$organization" in expr or "${organization}" in expr,
                       f"panel {title!r}: {expr} does not filter by $organization")
        if dump_exprs:
            data = [{"panel": title, "expr": t["expr"]} for title, t in targets]
            pathlib.Path(dump_exprs).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    @check
    def dashboard_promql_syntax():
        """Every dashboard query is valid PromQL (promtool, variables substituted)."""
        expect(dash, "dashboard did not parse")
        promtool = shutil.which("promtool")
        if not promtool:
            raise Skip("promtool not on PATH")
        targets = dashboard_exprs(dash)
        rules = [{"record": f"dashboard:query_{i}", "expr": substitute_grafana_vars(t["expr"])}
                 for i, (_, t) in enumerate(targets)]
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, fh)
        try:
            proc = subprocess.run([promtool, "check", "rules", fh.name], capture_output=True, text=True, check=False)
        finally:
            os.unlink(fh.name)
        if proc.returncode != 0:
            errors = []
            for line in (proc.stdout + proc.stderr).splitlines():
                m = re.search(r'"dashboard:query_(\d+)": (.*)', line)
                if m:
                    title, t = targets[int(m.group(1))]
                    errors.append(f"panel {title!r} {t['expr']!r}: {m.group(2)}")
            raise Fail("; ".join(errors) or (proc.stdout + proc.stderr).strip())

    @check
    def dockerfile_matches_deployment():
        """The Dockerfile exposes 9795, runs as 65532 and defaults to the config path the manifests use."""
        text = DOCKERFILE.read_text(encoding="utf-8")
        expect(re.search(rf"^EXPOSE\s+{PORT}\b", text, re.M), f"Dockerfile does not EXPOSE {PORT}")
        users = re.findall(r"^USER\s+(\S+)", text, re.M)
        expect(users and users[-1].split(":")[0] == "65532", f"last USER must be 65532, got {users}")
        entry = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", text, re.M)
        expect(entry and json.loads(entry.group(1)) == ["/usr/local/bin/workmail-pat-monitor"],
               "ENTRYPOINT must be [\"/usr/local/bin/workmail-pat-monitor\"]")
        cmd = re.search(r"^CMD\s+(\[.*\])\s*$", text, re.M)
        expect(cmd, "Dockerfile has no exec-form CMD")
        cmd = json.loads(cmd.group(1))
        deploy_args = only_container(art.one("Deployment")).get("args")
        expect(cmd == deploy_args, f"Dockerfile CMD {cmd} != Deployment args {deploy_args}")

    @check
    def iam_policies():
        """IAM policies: read-only grants exactly the read actions; cleanup adds only DeletePersonalAccessToken."""

        def load(path):
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as err:
                raise Fail(f"{rel(path)}: {err}") from err
            expect(doc.get("Version") == "2012-10-17", f"{rel(path)}: Version must be 2012-10-17")
            actions = set()
            for st in doc.get("Statement", []):
                expect(st.get("Effect") == "Allow", f"{rel(path)}: only Allow statements expected")
                acts = st.get("Action")
                acts = [acts] if isinstance(acts, str) else acts
                res = st.get("Resource")
                res = [res] if isinstance(res, str) else res
                for a in acts:
                    expect("*" not in a, f"{rel(path)}: wildcard action {a}")
                    if a in IAM_UNSCOPED_ACTIONS:
                        expect(res == ["*"], f"{rel(path)}: {a} needs Resource \"*\"")
                    else:
                        expect(res == [IAM_ORG_ARN], f"{rel(path)}: {a} should be scoped to {IAM_ORG_ARN}")
                actions |= set(acts)
            return actions

        ro = load(IAM_READONLY)
        cl = load(IAM_CLEANUP)
        expect(ro == IAM_READ_ACTIONS, f"read-only policy actions {sorted(ro ^ IAM_READ_ACTIONS)} differ")
        expect(cl == IAM_READ_ACTIONS | {IAM_DELETE_ACTION}, f"cleanup policy actions {sorted(cl ^ (IAM_READ_ACTIONS | {IAM_DELETE_ACTION}))} differ")

    return c


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dump-exprs", metavar="FILE", help="write the dashboard queries to FILE as JSON")
    parser.add_argument("--binary", metavar="PATH", default=os.environ.get("WORKMAIL_PAT_MONITOR_BIN"),
                        help="workmail-pat-monitor binary to run check-config with")
    args = parser.parse_args()

    art = Artifacts()
    passed = failed = skipped = 0
    for fn in checks(art, args.dump_exprs, args.binary):
        name = fn.__name__
        try:
            fn()
        except Skip as why:
            skipped += 1
            print(f"skip  {name}: {why}")
        except Fail as err:
            failed += 1
            print(f"FAIL  {name}: {err}")
        except (KeyError, TypeError, AttributeError, IndexError) as err:
            failed += 1
            print(f"FAIL  {name}: malformed input ({type(err).__name__}: {err})")
        else:
            passed += 1
            print(f"ok    {name}")
    summary = f"deploy-checks: {passed} passed, {failed} failed"
    if skipped:
        summary += f", {skipped} skipped"
    print(summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
