"""chicago_arrest.core.targets: the one rule that decides where a command goes, and the record of make kind-up."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from chicago_arrest.core.targets import ClusterRecord, TargetError, read_record, record_path, resolve_target

RECORD = {
    "cluster_name": "chicago-arrest",
    "context": "kind-chicago-arrest",
    "kfp_host": "http://localhost:3000",
    "mlflow_uri": "http://localhost:5000",
    "ingress_url": "http://localhost:8180",
    "s3_endpoint": "localhost:9000",
    "image": "chicago-arrest:0.1.0-abc",
    "recorded_at": "2026-11-29T21:00:00+00:00",
}


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ARREST_DATA_DIR", str(tmp_path))
    for key in ("MLFLOW_TRACKING_URI", "ARREST_MLFLOW_TRACKING_URI"):
        # set, then deleted: monkeypatch restores the variable (use_cluster_mlflow writes os.environ)
        monkeypatch.setenv(key, "placeholder")
        monkeypatch.delenv(key)
    return tmp_path


def recorded(data_dir: Path, **changes: object) -> Path:
    path = data_dir / "cluster.json"
    path.write_text(json.dumps(RECORD | changes))
    return path


def test_record_path_follows_the_data_dir(data_dir: Path) -> None:
    assert record_path() == data_dir / "cluster.json"
    assert record_path(Path("elsewhere")) == Path("elsewhere") / "cluster.json"


def test_without_a_record_the_target_is_local(data_dir: Path) -> None:
    resolved = resolve_target(None)
    assert (resolved.target, resolved.record) == ("local", None)
    assert resolved.line() == f"target: local (no cluster recorded in {data_dir / 'cluster.json'}; " + (
        "TARGET=cluster or make kind-up to change)"
    )
    assert resolved.kfp_host(None) == ""
    assert resolved.context(None) is None


def test_a_record_makes_the_cluster_the_default(data_dir: Path) -> None:
    recorded(data_dir)
    resolved = resolve_target(None)
    assert resolved.target == "cluster"
    assert "make kind-up recorded kind cluster chicago-arrest" in resolved.line()
    assert "TARGET=local runs locally" in resolved.line()
    assert resolved.kfp_host(None) == "http://localhost:3000"
    assert resolved.kfp_host("http://other:8888") == "http://other:8888"
    assert resolved.context(None) == "kind-chicago-arrest"
    assert resolved.context("mine") == "mine"


def test_an_explicit_target_wins(data_dir: Path) -> None:
    recorded(data_dir)
    local = resolve_target("local")
    assert local.target == "local"
    assert local.line() == "target: local (asked for: TARGET=local)"
    # the record is known but not used off the cluster target
    assert local.record is not None
    assert local.kfp_host(None) == ""
    assert local.context(None) is None
    assert resolve_target("vertex").target == "vertex"
    assert resolve_target("cluster").context(None) == "kind-chicago-arrest"


def test_explicit_cluster_without_a_record_uses_the_current_context(data_dir: Path) -> None:
    resolved = resolve_target("cluster")
    assert (resolved.target, resolved.context(None), resolved.kfp_host(None)) == ("cluster", None, "")


def test_kfp_host_given_means_that_cluster(data_dir: Path) -> None:
    resolved = resolve_target(None, kfp_host="http://kfp:8888")
    assert resolved.target == "cluster"
    assert resolved.line() == "target: cluster (KFP_HOST=http://kfp:8888 given)"
    assert resolved.kfp_host("http://kfp:8888") == "http://kfp:8888"
    assert resolve_target("local", kfp_host="http://kfp:8888").target == "local"


def test_unknown_target_is_one_clear_error(data_dir: Path) -> None:
    with pytest.raises(TargetError, match="target 'moon' is not one of local, cluster, vertex"):
        resolve_target("moon")


def test_a_broken_record_says_what_to_do(data_dir: Path) -> None:
    path = data_dir / "cluster.json"
    path.write_text("{not json")
    with pytest.raises(
        TargetError, match=r"is not a cluster record .*re-run `make kind-up`, or delete the file"
    ):
        resolve_target(None)
    path.write_text(json.dumps({"cluster_name": "x"}))
    with pytest.raises(TargetError, match="not a cluster record"):
        read_record(path)
    # an explicit target is not blocked by it
    assert resolve_target("local").target == "local"


def test_cluster_mlflow_only_when_no_tracking_uri_is_set(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded(data_dir)
    assert resolve_target("local").use_cluster_mlflow() is None
    assert "MLFLOW_TRACKING_URI" not in os.environ
    monkeypatch.setenv("ARREST_MLFLOW_TRACKING_URI", "http://mine:5000")
    assert resolve_target(None).use_cluster_mlflow() is None
    monkeypatch.delenv("ARREST_MLFLOW_TRACKING_URI")
    assert resolve_target(None).use_cluster_mlflow() == "http://localhost:5000"
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://localhost:5000"


def test_record_ignores_unknown_keys(data_dir: Path) -> None:
    record = read_record(recorded(data_dir, future_key=1))
    assert record == ClusterRecord(**RECORD)
    assert read_record(data_dir / "missing.json") is None
