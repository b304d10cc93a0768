"""A throw-away Kubernetes API for tests: a threaded HTTP server on 127.0.0.1 and a kubeconfig pointing at it.

It serves stored objects by URL path (``GET``), and a collection path lists the objects under it (as
``{"kind": "...List", "items": [...]}``, filtered by an equality ``labelSelector``). It takes server-side applies
(``PATCH`` with ``application/apply-patch+yaml``): the applied object replaces ``metadata.labels/annotations``
and ``spec``, the stored ``status`` stays; and JSON merge patches (``application/merge-patch+json``, RFC 7386:
``null`` removes a field) of a stored object. Any other patch type gets 415, as from a real API server that
cannot apply it. Every request is recorded (method, path, query, content type, parsed body). ``fail`` makes a
path answer an error status (a ``Status`` object, as the API server sends).
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

ISVC_PATH = "/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{name}"
REVISION_PATH = "/apis/serving.knative.dev/v1/namespaces/{namespace}/revisions/{name}"
CONFIG_MAP_PATH = "/api/v1/namespaces/{namespace}/configmaps/{name}"
SECRET_PATH = "/api/v1/namespaces/{namespace}/secrets/{name}"
POD_PATH = "/api/v1/namespaces/{namespace}/pods/{name}"
TOKEN = "fake-token"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str | None
    body: Any


@dataclass
class FakeKube:
    """The state of the fake API: objects by path, recorded requests, forced failures by path."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    url: str = ""

    def kubeconfig(self, path: Path, context: str = "kind-chicago-arrest") -> Path:
        """Write a kubeconfig whose ``context`` (also the current one) points at this server."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": TOKEN}}],
            "contexts": [{"name": context, "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config))
        return path


def _status(code: int, path: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "message": f"{code} {path}",
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, ``None`` removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _selected(obj: dict[str, Any], selector: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _handler(state: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _answer(self, code: int, obj: dict[str, Any]) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> Request:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = Request(
                self.command,
                url.path,
                parse_qs(url.query),
                self.headers.get("Content-Type"),
                yaml.safe_load(raw) if raw else None,
            )
            state.requests.append(request)
            return request

        def do_GET(self) -> None:
            request = self._record()
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._answer(401, _status(401, request.path))
            if request.path in state.fail:
                return self._answer(state.fail[request.path], _status(state.fail[request.path], request.path))
            if request.path not in state.objects:
                prefix = request.path.rstrip("/") + "/"
                under = [
                    obj
                    for path, obj in sorted(state.objects.items())
                    if path.startswith(prefix) and "/" not in path[len(prefix) :]
                ]
                selector = (request.query.get("labelSelector") or [""])[0]
                if under or request.path.endswith(("/pods", "/events", "/revisions")):
                    items = [obj for obj in under if _selected(obj, selector)]
                    return self._answer(200, {"kind": "List", "apiVersion": "v1", "items": items})
                return self._answer(404, _status(404, request.path))
            return self._answer(200, state.objects[request.path])

        def do_PATCH(self) -> None:
            request = self._record()
            if request.path in state.fail:
                return self._answer(state.fail[request.path], _status(state.fail[request.path], request.path))
            if request.content_type == "application/merge-patch+json":
                if request.path not in state.objects:
                    return self._answer(404, _status(404, request.path))
                if "force" in request.query:  # the API server refuses force on anything but an apply
                    return self._answer(422, _status(422, request.path))
                state.objects[request.path] = merge_patch(state.objects[request.path], request.body)
                return self._answer(200, state.objects[request.path])
            if request.content_type != "application/apply-patch+yaml":
                return self._answer(415, _status(415, request.path))
            stored = copy.deepcopy(state.objects.get(request.path, {}))
            applied = copy.deepcopy(request.body)
            if "status" in stored:
                applied["status"] = stored["status"]
            state.objects[request.path] = applied
            return self._answer(201 if not stored else 200, applied)

    return Handler


@contextmanager
def fake_kube(objects: dict[str, dict[str, Any]] | None = None) -> Iterator[FakeKube]:
    """Run a fake Kubernetes API for the duration of the block."""
    state = FakeKube(objects=copy.deepcopy(objects or {}))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
