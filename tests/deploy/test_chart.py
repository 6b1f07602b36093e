"""helm/replate rendered by the real helm: lint, Kubernetes schemas, the values schema, the security checklist, and
the objects each values file must produce."""

from __future__ import annotations

import base64
import copy
import re
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.auth import CHOSEN_KEY
from gateway.settings import Settings
from tests.deploy.checklist import violations
from tests.deploy.conftest import (
    CHART,
    KUBE_VERSIONS,
    PRODUCTION_VALUES,
    SERVICE_MONITOR_API,
    Render,
    by_kind,
    named,
    run_helm,
)

CRD_KINDS = {"ServiceMonitor"}
"""Kinds from CustomResourceDefinitions, for which kubernetes-validate ships no schema: checked by hand below."""

# name -> (values files, --set values, --api-versions)
SETUPS: dict[str, tuple[tuple[Path, ...], tuple[str, ...], tuple[str, ...]]] = {
    "default": ((), (), ()),
    "production": ((PRODUCTION_VALUES,), (), (SERVICE_MONITOR_API,)),
    "bundled-postgresql": ((), ("postgresql.enabled=true", "ingress.enabled=true"), ()),
    "pvc-models-on-cpu": (
        (),
        (
            "triton.gpus=0",
            "triton.modelRepository.source=pvc",
            "triton.modelRepository.pvc.claimName=replate-models",
            "triton.modelRepository.replaceBuiltin={matting_segmenter}",
        ),
        (),
    ),
}


def render_setup(render: Render, name: str, kube_version: str = KUBE_VERSIONS[0]) -> list[dict[str, Any]]:
    values_files, set_values, api_versions = SETUPS[name]
    return render(values_files, set_values, api_versions, kube_version=kube_version)


@pytest.mark.parametrize("values_files", [(), (PRODUCTION_VALUES,)], ids=["default", "production"])
def test_helm_lint_strict_passes(helm: Path, values_files: tuple[Path, ...]) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), *(f"--values={path}" for path in values_files))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("setup", SETUPS)
def test_every_rendered_object_matches_the_kubernetes_schemas(render: Render, setup: str, kube_version: str) -> None:
    objects = render_setup(render, setup, kube_version)
    assert len(objects) >= 10
    for item in objects:
        if item["kind"] in CRD_KINDS:
            continue  # no schema in kubernetes-validate: test_service_monitors_scrape_both_components checks them
        kubernetes_validate.validate(item, kube_version, strict=True)


def test_kubernetes_validate_rejects_what_the_api_server_would(render: Render) -> None:
    """The validation above can fail: a misspelt field and a wrong type are caught in strict mode."""
    deployment = named(render_setup(render, "default"), "Deployment", "gateway")
    misspelt = copy.deepcopy(deployment)
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    for broken in (misspelt, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBE_VERSIONS[0], strict=True)


@pytest.mark.parametrize("setup", SETUPS)
def test_rendered_manifests_pass_the_security_checklist(render: Render, setup: str) -> None:
    objects = render_setup(render, setup)
    assert violations(objects) == []
    workloads = [item for item in objects if item["kind"] in {"Deployment", "StatefulSet", "Job"}]
    assert len(workloads) >= 3  # the checklist looked at containers


def test_the_checklist_finds_each_kind_of_violation(render: Render) -> None:
    objects = render_setup(render, "production")
    gateway = named(objects, "Deployment", "gateway")
    del gateway["spec"]["template"]["spec"]["securityContext"]
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"] = {"runAsUser": 0}
    del container["resources"]["limits"]
    container["image"] = "registry.example.com/replate/gateway:latest"
    container["env"].append({"name": "AWS_SECRET_ACCESS_KEY", "value": "hunter2hunter2"})
    config_map = named(objects, "ConfigMap", "gateway")
    admin_key = base64.b64decode(named(objects, "Secret", "generated")["data"]["admin-key"]).decode()
    config_map["data"]["REPLATE_EXTRA"] = admin_key
    config_map["data"]["REPLATE_S3_ENDPOINT_URL"] = "https://user:pass@minio:9000"
    found = "\n".join(violations(objects))
    for expected in (
        "runs as root",
        "runAsNonRoot is not true",
        "allowPrivilegeEscalation is not false",
        "capabilities do not drop ALL",
        "root filesystem is writable",
        "no cpu limit",
        "no memory limit",
        "latest tag",
        "env AWS_SECRET_ACCESS_KEY is a literal value",
        "key REPLATE_EXTRA holds a value of a Secret",
        "key REPLATE_S3_ENDPOINT_URL has credentials in a URL",
    ):
        assert expected in found


@pytest.mark.parametrize(
    ("bad_values", "message"),
    [
        ({"gateway": {"replicaCount": "two"}}, "/gateway/replicaCount': got string, want integer"),
        ({"triton": {"gpus": 0.5}}, "/triton/gpus': got number, want integer"),
        ({"gateway": {"config": {"priceReplaceBackground": "5 credits"}}}, "priceReplaceBackground"),
        ({"gateway": {"image": {"tag": "latest"}}}, "/gateway/image/tag"),
        ({"storage": {"type": "s3"}}, "/storage/s3/bucket"),
        ({"triton": {"modelRepository": {"source": "url", "url": "http://models"}}}, "/triton/modelRepository/url"),
        ({"gatway": {"replicaCount": 2}}, "additional properties 'gatway' not allowed"),
        ({"triton": {"segmenter": {"weights": "u2netp", "format": "sam"}}}, "/triton/segmenter/format"),
    ],
)
def test_values_of_a_wrong_type_fail_schema_validation(
    helm: Path, tmp_path: Path, bad_values: dict[str, Any], message: str
) -> None:
    values = tmp_path / "bad-values.yaml"
    values.write_text(yaml.safe_dump(bad_values))
    for command in ("lint", "template"):
        args = [command, *(["--strict"] if command == "lint" else ["replate"]), str(CHART), f"--values={values}"]
        result = run_helm(helm, *args)
        assert result.returncode != 0, f"helm {command} accepted {bad_values}"
        assert "don't meet the specifications of the schema" in result.stdout + result.stderr
        assert message in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("set_values", "message"),
    [
        (("gateway.replicaCount=3",), "with more than one gateway replica set storage.local.existingClaim"),
        (("triton.modelRepository.source=pvc",), "needs triton.modelRepository.pvc.claimName"),
        (("triton.modelRepository.replaceBuiltin={matting_segmenter}",), "needs a second repository"),
        (("triton.enabled=false",), "triton.enabled=false needs gateway.tritonUrl"),
    ],
)
def test_inconsistent_values_fail_with_a_message(helm: Path, set_values: tuple[str, ...], message: str) -> None:
    result = run_helm(helm, "template", "replate", str(CHART), *(f"--set={value}" for value in set_values))
    assert result.returncode != 0 and message in result.stderr


def test_default_install_objects(render: Render) -> None:
    objects = render_setup(render, "default")
    assert Counter(item["kind"] for item in objects) == {
        "ConfigMap": 1,
        "Deployment": 2,
        "Job": 1,
        "NetworkPolicy": 2,
        "PodDisruptionBudget": 2,
        "Secret": 1,
        "Service": 2,
        "ServiceAccount": 1,
    }
    gateway = named(objects, "Deployment", "gateway")
    assert gateway["spec"]["replicas"] == 1
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "replate-gateway:0.1.0"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    database = next(item for item in container["env"] if item["name"] == "REPLATE_DATABASE_URL")
    assert database["valueFrom"]["secretKeyRef"] == {"name": "replate-database", "key": "url"}
    spread = gateway["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert [item["topologyKey"] for item in spread] == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    ports = {port["name"]: port for port in named(objects, "Service", "gateway")["spec"]["ports"]}
    assert ports["http"]["appProtocol"] == "http" and ports["grpc"]["appProtocol"] == "kubernetes.io/h2c"
    config = named(objects, "ConfigMap", "gateway")["data"]
    assert config["REPLATE_TRITON_URL"] == "replate-triton:8001"
    assert config["REPLATE_PRICE_REPLACE_BACKGROUND"] == "5" and config["REPLATE_MAX_IMAGE_BYTES"] == "20971520"
    admin_key = base64.b64decode(named(objects, "Secret", "generated")["data"]["admin-key"]).decode()
    assert CHOSEN_KEY.fullmatch(admin_key), "the generated admin key must be one `replate keys bootstrap` accepts"


def test_triton_gets_a_gpu_its_own_probes_and_a_long_startup(render: Render) -> None:
    objects = render_setup(render, "default")
    pod = named(objects, "Deployment", "triton")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/v2/health/ready"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600, "TensorRT engines need minutes to load"
    assert {"name": "metrics", "containerPort": 8002, "protocol": "TCP"} in container["ports"]
    assert container["args"][:2] == ["tritonserver", "--model-repository=/opt/replate/model_repository"]
    shm = next(volume for volume in pod["volumes"] if volume["name"] == "shm")
    assert shm["emptyDir"]["medium"] == "Memory"
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert (env["REPLATE_SEGMENTER"], env["REPLATE_SEGMENTER_FORMAT"]) == ("u2netp", "u2net")


def test_production_values_use_external_services_and_scale(render: Render) -> None:
    objects = render_setup(render, "production")
    assert {item["metadata"]["name"] for item in by_kind(objects, "HorizontalPodAutoscaler")} == {
        "replate-gateway",
        "replate-triton",
    }
    hpa = named(objects, "HorizontalPodAutoscaler", "gateway")["spec"]
    assert [metric["type"] for metric in hpa["metrics"]] == ["Resource", "Pods"]
    assert hpa["metrics"][1]["pods"]["metric"]["name"] == "replate_pipeline_calls_inflight"
    assert "replicas" not in named(objects, "Deployment", "gateway")["spec"]  # the HPA owns the count
    ingress_hosts = {item["spec"]["rules"][0]["host"] for item in by_kind(objects, "Ingress")}
    assert ingress_hosts == {"api.replate.example.com", "grpc.replate.example.com"}
    grpc_ingress = named(objects, "Ingress", "grpc")
    assert grpc_ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPC"
    assert grpc_ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] == {"name": "grpc"}
    assert not by_kind(objects, "StatefulSet")
    config = named(objects, "ConfigMap", "gateway")["data"]
    assert config["REPLATE_STORAGE"] == "s3" and config["REPLATE_S3_BUCKET"] == "replate-outputs"
    triton = named(objects, "Deployment", "triton")["spec"]["template"]["spec"]
    args = triton["containers"][0]["args"]
    assert "--model-repository=/srv/builtin" in args
    assert "--model-repository=s3://replate-models/l4-trt-10.5" in args
    assert triton["containers"][0]["envFrom"] == [{"secretRef": {"name": "triton-model-store"}}]
    copy_builtin = triton["initContainers"][0]
    assert copy_builtin["command"][-1] == "matting_segmenter"


def test_service_monitors_scrape_both_components_only_when_the_crds_exist(render: Render) -> None:
    with_crds = render_setup(render, "production")
    monitors = {item["metadata"]["name"]: item for item in by_kind(with_crds, "ServiceMonitor")}
    assert set(monitors) == {"replate-gateway", "replate-triton"}
    services = {item["metadata"]["name"]: item for item in by_kind(with_crds, "Service")}
    for name, monitor in monitors.items():
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        service = services[name]
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items()
        [endpoint] = monitor["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
        assert re.fullmatch(r"[0-9]+s", endpoint["interval"])
    without_crds = render((PRODUCTION_VALUES,))
    assert not by_kind(without_crds, "ServiceMonitor")


def test_network_policies_let_only_the_gateway_reach_triton_and_the_database(render: Render) -> None:
    objects = render_setup(render, "bundled-postgresql")
    gateway_pods = named(objects, "Deployment", "gateway")["spec"]["template"]["metadata"]["labels"]
    migrations_pods = by_kind(objects, "Job")[0]["spec"]["template"]["metadata"]["labels"]
    for target in ("triton", "postgresql"):
        policy = named(objects, "NetworkPolicy", target)["spec"]
        serving = named(objects, "Deployment" if target == "triton" else "StatefulSet", target)
        assert policy["podSelector"]["matchLabels"].items() <= serving["spec"]["template"]["metadata"]["labels"].items()
        peers = policy["ingress"][0]["from"]
        allowed = [gateway_pods, migrations_pods] if target == "postgresql" else [gateway_pods]
        assert len(peers) == len(allowed)
        for peer, pod_labels in zip(peers, allowed, strict=True):
            assert peer["podSelector"]["matchLabels"].items() <= pod_labels.items()
    triton_rules = named(objects, "NetworkPolicy", "triton")["spec"]["ingress"]
    assert [port["port"] for port in triton_rules[1]["ports"]] == ["metrics"]  # anyone may only scrape


def test_migrations_run_before_the_pods_change_and_register_the_admin_key(render: Render) -> None:
    external = by_kind(render_setup(render, "default"), "Job")[0]
    assert external["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    pod = external["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["command"] == ["replate", "db", "upgrade"]
    bootstrap = pod["containers"][0]
    assert bootstrap["command"] == ["replate", "keys", "bootstrap", "--name", "admin", "--credits", "1000"]
    key = next(item for item in bootstrap["env"] if item["name"] == "REPLATE_BOOTSTRAP_KEY")
    assert key["valueFrom"]["secretKeyRef"] == {"name": "replate-generated", "key": "admin-key"}
    # Keys are hashed under one secret: the Job that registers (and re-hashes) them and every gateway share it.
    gateway = named(render_setup(render, "default"), "Deployment", "gateway")["spec"]["template"]["spec"]
    for container in (pod["initContainers"][0], bootstrap, gateway["containers"][0]):
        secret = next(item for item in container["env"] if item["name"] == "REPLATE_API_KEY_SECRET")
        assert secret["valueFrom"]["secretKeyRef"] == {"name": "replate-generated", "key": "api-key-secret"}
    bundled = render_setup(render, "bundled-postgresql")
    job = by_kind(bundled, "Job")[0]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"  # the database comes first
    secret = named(bundled, "Secret", "generated")
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    url = base64.b64decode(secret["data"]["database-url"]).decode()
    password = base64.b64decode(secret["data"]["postgresql-password"]).decode()
    assert url == f"postgresql+asyncpg://replate:{password}@replate-postgresql:5432/replate"


@pytest.mark.parametrize("setup", ["default", "production"])
def test_the_config_map_holds_valid_gateway_settings(render: Render, setup: str) -> None:
    """Every key is a REPLATE_* setting the gateway reads, and together they parse (types, ranges)."""
    data = named(render_setup(render, setup), "ConfigMap", "gateway")["data"]
    fields = {f"REPLATE_{name.upper()}" for name in Settings.model_fields}
    assert set(data) <= fields, set(data) - fields
    environment = {**data, "REPLATE_DATABASE_URL": "postgresql+asyncpg://db/replate"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        settings = Settings()
    assert settings.http_host == "0.0.0.0" and settings.triton_url == "replate-triton:8001"
    assert settings.max_inflight == 32 and settings.url_allowed_hosts == []
