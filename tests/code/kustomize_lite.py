"""Render the kustomize subset that manifests/ uses, so tests need neither kubectl nor a kustomize binary.

No pip-installable kustomize exists (the PyPI project called ``kustomize`` is an unrelated Python tool), and
CI machines have no kubectl. This renderer implements exactly what the kustomizations of manifests/ use and
refuses everything else, so a kustomization that grows a feature fails here instead of being half-rendered:

* ``resources``: YAML files and directories with their own ``kustomization.yaml`` (rendered recursively);
* ``patches`` with ``path`` and a ``target`` (group / version / kind / name), each patch a JSON 6902
  operation list: ``add``, ``replace``, ``remove`` and ``test`` (RFC 6902 semantics, as kustomize applies
  them through evanphx/json-patch).

``apiVersion`` / ``kind`` of the kustomization must be ``kustomize.config.k8s.io/v1beta1`` / ``Kustomization``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "patches"}
PATCH_KEYS = {"path", "target"}
TARGET_KEYS = {"group", "version", "kind", "name"}
OPS = {"add", "replace", "remove", "test"}


class KustomizeError(ValueError):
    """The kustomization uses something this renderer does not implement, or a patch does not apply."""


def build(directory: Path) -> list[dict[str, Any]]:
    """Render the kustomization in ``directory``: the objects, in resource order."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KUSTOMIZATION_KEYS
    if unknown:
        raise KustomizeError(f"{directory}: unsupported kustomization fields {sorted(unknown)}")
    if (kustomization.get("apiVersion"), kustomization.get("kind")) != (
        "kustomize.config.k8s.io/v1beta1",
        "Kustomization",
    ):
        raise KustomizeError(f"{directory}: not a kustomize.config.k8s.io/v1beta1 Kustomization")
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        if path.is_dir():
            objects += build(path)
        elif path.is_file():
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        else:
            raise KustomizeError(f"{directory}: resource {resource!r} does not exist")
    _check_unique(objects, directory)
    for patch in kustomization.get("patches", []):
        if set(patch) != PATCH_KEYS or set(patch["target"]) - TARGET_KEYS:
            raise KustomizeError(f"{directory}: unsupported patch form {patch}")
        ops = yaml.safe_load((directory / patch["path"]).read_text())
        matched = [obj for obj in objects if _matches(obj, patch["target"])]
        if not matched:
            raise KustomizeError(f"{directory}: patch {patch['path']} matches no resource")
        for obj in matched:
            index = objects.index(obj)
            objects[index] = apply_json6902(obj, ops)
    return objects


def _check_unique(objects: list[dict[str, Any]], directory: Path) -> None:
    seen = set()
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if key in seen:
            raise KustomizeError(f"{directory}: {key} is defined twice")
        seen.add(key)


def _matches(obj: dict[str, Any], target: dict[str, str]) -> bool:
    group, _, version = obj["apiVersion"].rpartition("/")
    actual = {"group": group, "version": version, "kind": obj["kind"], "name": obj["metadata"]["name"]}
    return all(actual[key] == value for key, value in target.items())


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"JSON pointer must start with '/': {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError) as exc:
            raise KustomizeError(f"path {path!r} does not exist") from exc
    return node, parts[-1]


def apply_json6902(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply RFC 6902 operations (add / replace / remove / test) to a copy of ``obj``."""
    if not isinstance(ops, list):
        raise KustomizeError("only JSON 6902 patches (a list of operations) are supported")
    doc = copy.deepcopy(obj)
    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        if kind not in OPS:
            raise KustomizeError(f"unsupported JSON patch op {kind!r}")
        parent, last = _parent(doc, _pointer(path), path)
        if isinstance(parent, list):
            if kind == "add" and last == "-":
                parent.append(copy.deepcopy(op["value"]))
                continue
            try:
                index = int(last)
            except ValueError as exc:
                raise KustomizeError(f"path {path!r}: {last!r} is not a list index") from exc
            if not 0 <= index < len(parent) + (kind == "add"):
                raise KustomizeError(f"path {path!r}: index out of range")
            if kind == "add":
                parent.insert(index, copy.deepcopy(op["value"]))
            elif kind == "remove":
                del parent[index]
            elif kind == "replace":
                parent[index] = copy.deepcopy(op["value"])
            elif parent[index] != op["value"]:
                raise KustomizeError(f"test failed at {path!r}: {parent[index]!r} != {op['value']!r}")
        elif isinstance(parent, dict):
            if kind != "add" and last not in parent:
                raise KustomizeError(f"path {path!r} does not exist")
            if kind in ("add", "replace"):
                parent[last] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del parent[last]
            elif parent[last] != op["value"]:
                raise KustomizeError(f"test failed at {path!r}: {parent[last]!r} != {op['value']!r}")
        else:
            raise KustomizeError(f"path {path!r} does not point into an object or a list")
    return doc
