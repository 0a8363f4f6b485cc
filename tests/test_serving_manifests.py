"""TF Serving manifests: valid YAML, the Pusher's layout, locked-down pods, private by default, no secrets."""

from __future__ import annotations

import copy
import glob
import os
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from kubeflow import secrets_scan

SERVING = os.path.join(os.path.dirname(__file__), "..", "kubeflow", "serving")
MANIFESTS = sorted(glob.glob(os.path.join(SERVING, "**", "*.yaml"), recursive=True))


def load(path: str) -> list[dict[str, Any]]:
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def base_objects() -> dict[str, dict[str, Any]]:
    docs = [doc for path in glob.glob(os.path.join(SERVING, "base", "*.yaml")) for doc in load(path)]
    return {doc["kind"]: doc for doc in docs if doc.get("kind") != "Kustomization"}


def security_violations(deployment: dict[str, Any]) -> list[str]:
    """What in this Deployment breaks the security defaults (empty when it is locked down)."""
    pod = deployment["spec"]["template"]["spec"]
    psc = pod.get("securityContext", {})
    problems = []
    if psc.get("runAsNonRoot") is not True:
        problems.append("pod runAsNonRoot")
    if not isinstance(psc.get("runAsUser"), int) or psc["runAsUser"] == 0:
        problems.append("pod numeric non-root runAsUser")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append("pod seccompProfile")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("service account token mounted")
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{c['name']} allowPrivilegeEscalation")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{c['name']} readOnlyRootFilesystem")
        if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
            problems.append(f"{c['name']} capabilities")
        if sc.get("privileged") or sc.get("runAsUser") == 0:
            problems.append(f"{c['name']} privileged/root")
        resources = c.get("resources", {})
        if not {"cpu", "memory"} <= set(resources.get("requests", {})) & set(resources.get("limits", {})):
            problems.append(f"{c['name']} resource requests/limits")
    return problems


def model_config(objects: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """(model name, base_path) from the TF Serving model config in the ConfigMap."""
    text = objects["ConfigMap"]["data"]["models.config"]
    names = re.findall(r'\bname:\s*"([^"]+)"', text)
    paths = re.findall(r'\bbase_path:\s*"([^"]+)"', text)
    assert len(names) == len(paths) == 1
    assert re.search(r"model_version_policy\s*{\s*latest\s*{\s*num_versions:\s*2\s*}", text)
    return names[0], paths[0]


def test_every_manifest_parses_as_yaml() -> None:
    assert len(MANIFESTS) >= 7
    for path in MANIFESTS:
        docs = load(path)
        assert docs and all("kind" in doc and "apiVersion" in doc for doc in docs), path


def test_model_base_path_is_the_read_only_mount_of_the_pushers_serving_dir() -> None:
    objects = base_objects()
    name, base_path = model_config(objects)
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    store = next(n for n, v in volumes.items() if "persistentVolumeClaim" in v)
    # The Pusher writes <serving dir>/<integer version>/: base_path must be that directory itself, not a parent.
    assert mounts[store]["mountPath"].rstrip("/") == base_path.rstrip("/")
    assert mounts[store]["readOnly"] is True and volumes[store]["persistentVolumeClaim"]["readOnly"] is True
    assert volumes[store]["persistentVolumeClaim"]["claimName"] == objects["PersistentVolumeClaim"]["metadata"]["name"]
    args = container["args"]
    config_mount = next(m for m in container["volumeMounts"] if "configMap" in volumes[m["name"]])
    assert f"--model_config_file={config_mount['mountPath']}/models.config" in args
    assert any(re.fullmatch(r"--model_config_file_poll_wait_seconds=[1-9]\d*", a) for a in args)
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == f"/v1/models/{name}"


def test_serving_pods_are_locked_down_and_the_check_can_fail() -> None:
    deployment = base_objects()["Deployment"]
    assert security_violations(deployment) == []
    loosened = copy.deepcopy(deployment)
    loosened["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 0
    loosened["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    assert security_violations(loosened) == ["pod numeric non-root runAsUser", "tf-serving readOnlyRootFilesystem"]


def test_image_is_pinned_and_ports_are_cluster_internal_and_client_only() -> None:
    objects = base_objects()
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert re.fullmatch(r"tensorflow/serving:\d+\.\d+\.\d+", container["image"])
    service = objects["Service"]["spec"]
    assert service["type"] == "ClusterIP" and sorted(p["port"] for p in service["ports"]) == [8500, 8501]
    policy = objects["NetworkPolicy"]["spec"]
    pod_labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items() and policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"gmvae-serving-client": "true"}}}]
    assert sorted(p["port"] for p in rule["ports"]) == [8500, 8501]
    for path in MANIFESTS:
        for doc in load(path):
            assert doc["kind"] not in ("Ingress", "Gateway", "Route")
            assert doc.get("spec", {}).get("type") not in ("LoadBalancer", "NodePort"), path


def test_gpu_overlay_uses_the_gpu_image_and_requests_a_gpu() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (needed for 'kubectl kustomize', which runs offline)")
    rendered = subprocess.run([kubectl, "kustomize", os.path.join(SERVING, "overlays", "gpu")],
                              check=True, capture_output=True, text=True, timeout=30).stdout
    deployment = next(d for d in yaml.safe_load_all(rendered) if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert re.fullmatch(r"tensorflow/serving:\d+\.\d+\.\d+-gpu", container["image"])
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert security_violations(deployment) == []


def test_manifests_carry_no_secrets_and_the_scan_catches_a_planted_one(tmp_path) -> None:
    assert secrets_scan.scan_paths(MANIFESTS) == []
    planted = tmp_path / "deployment.yaml"
    with open(os.path.join(SERVING, "base", "deployment.yaml")) as f:
        key = "AIza" + "x1" * 17 + "z"
        planted.write_text(f.read().replace("- --port=8500", f"- --port=8500\n            - --api_key={key}"))
    assert {f.kind for f in secrets_scan.scan_paths([str(planted)])} >= {"Google API Key", "Secret Keyword"}
