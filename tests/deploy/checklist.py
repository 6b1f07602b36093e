"""The security checklist a platform team applies to rendered manifests; each check returns what it found wrong.

- no container runs as root (runAsNonRoot, a non-zero runAsUser, no privilege escalation, ALL capabilities dropped,
  read-only root filesystem);
- every container, init containers included, has CPU and memory limits;
- every image has an explicit tag other than `latest`;
- secrets are never in ConfigMaps, nor in env literal values: only through secretKeyRef / secretRef / volumes.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

POD_OWNERS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|PRIVATE|(^|_)KEY($|_)|ACCESS_KEY|DATABASE_URL", re.I)
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


def violations(objects: list[dict[str, Any]]) -> list[str]:
    secret_values = _secret_values(objects)
    found: list[str] = []
    for item in objects:
        where = f"{item['kind']}/{item['metadata']['name']}"
        if item["kind"] == "ConfigMap":
            found += [f"{where}: {problem}" for problem in _config_map_problems(item, secret_values)]
        for pod, container in _containers(item):
            name = f"{where} container {container['name']}"
            found += [f"{name}: {problem}" for problem in _container_problems(pod, container)]
    return found


def _containers(item: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    if item["kind"] not in POD_OWNERS:
        return
    spec = item["spec"]
    if item["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod = spec["template"]["spec"]
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        yield pod, container


def _container_problems(pod: dict[str, Any], container: dict[str, Any]) -> Iterator[str]:
    pod_context = pod.get("securityContext", {})
    context = container.get("securityContext", {})
    if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot", False)):
        yield "runAsNonRoot is not true"
    if context.get("runAsUser", pod_context.get("runAsUser")) in (0, None):
        yield "runs as root (runAsUser 0 or unset)"
    if context.get("allowPrivilegeEscalation", True):
        yield "allowPrivilegeEscalation is not false"
    if context.get("privileged", False):
        yield "privileged"
    if "ALL" not in context.get("capabilities", {}).get("drop", []):
        yield "capabilities do not drop ALL"
    if not context.get("readOnlyRootFilesystem", False):
        yield "root filesystem is writable"
    limits = container.get("resources", {}).get("limits", {})
    for resource in ("cpu", "memory"):
        if resource not in limits:
            yield f"no {resource} limit"
    image = container["image"]
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    if "@sha256:" not in image and tag in ("", "latest"):
        yield f"image {image!r} has no tag or the latest tag"
    for variable in container.get("env", []):
        if "value" in variable and SECRET_NAME.search(variable["name"]):
            yield f"env {variable['name']} is a literal value (use secretKeyRef)"
        if CREDENTIALS_IN_URL.search(str(variable.get("value", ""))):
            yield f"env {variable['name']} has credentials in a URL"
    for source in container.get("envFrom", []):
        if "configMapRef" not in source and "secretRef" not in source:
            yield f"envFrom of an unknown kind: {source}"


def _config_map_problems(item: dict[str, Any], secret_values: set[str]) -> Iterator[str]:
    for key, value in item.get("data", {}).items():
        if SECRET_NAME.search(key):
            yield f"key {key} looks like a secret"
        if CREDENTIALS_IN_URL.search(value):
            yield f"key {key} has credentials in a URL"
        if value in secret_values:
            yield f"key {key} holds a value of a Secret"


def _secret_values(objects: list[dict[str, Any]]) -> set[str]:
    values = set()
    for item in objects:
        if item["kind"] == "Secret":
            values |= {base64.b64decode(value).decode() for value in item.get("data", {}).values()}
            values |= set(item.get("stringData", {}).values())
    return {value for value in values if len(value) >= 8}
