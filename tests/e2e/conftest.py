"""Fixtures of the end-to-end server tests (helpers in :mod:`tests.e2e.helpers`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from tests.e2e.helpers import GOLDEN, REPO_ROOT, Server, Stack, child_env, free_port, spawn, start_server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Start, in parallel where possible: the golden server (one model folder, as on the cluster), a server
    with no champion (must exit with a clear message), and, once a registry with two versions exists, the
    serving-state server (champion + challenger)."""
    root = tmp_path_factory.mktemp("serving-e2e")
    data_dir = root / "data"
    empty = root / "empty"
    golden = start_server(
        ["--model_dir", str(GOLDEN / "model")],
        root / "golden.log",
        ARREST_SERVER_MODEL_VERSION="golden-1",
        ARREST_DATA_DIR=str(empty),
    )
    no_champion = spawn(
        [
            sys.executable,
            "-m",
            "arrest_server",
            "--http_port",
            str(free_port()),
            "--grpc_port",
            str(free_port()),
        ],
        root / "no-champion.log",
        child_env(ARREST_DATA_DIR=str(empty)),
    )
    registry = spawn(
        [sys.executable, str(REPO_ROOT / "tests" / "e2e" / "make_registry.py"), str(data_dir)],
        root / "registry.log",
        child_env(),
    )
    state: Server | None = None
    try:
        if registry.wait(timeout=300) != 0:
            pytest.fail(f"building the registry failed:\n{registry.output()[-4000:]}")
        versions = json.loads(registry.output().strip().splitlines()[-1])
        state = start_server(
            [], root / "state.log", ARREST_DATA_DIR=str(data_dir), ARREST_SERVER_POLL_INTERVAL_S="0.2"
        )
        golden.wait_ready()
        state.wait_ready()
        yield Stack(golden, state, data_dir, versions, no_champion)
    finally:
        for proc in (golden, no_champion, registry, state):
            if proc is not None:
                proc.stop()
