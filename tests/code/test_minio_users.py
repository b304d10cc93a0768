"""chicago_arrest.cli.minio_users: one MinIO user per app, each policy limited to its buckets (the bucket Job)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from chicago_arrest.cli import minio_users
from chicago_arrest.cli.minio_users import APPS, UsersError, app_keys, ensure_users
from chicago_arrest.core import names

ENV = {
    "MINIO_STEPS_ACCESS_KEY": "steps-1",
    "MINIO_STEPS_SECRET_KEY": "steps-secret-1",
    "MINIO_MLFLOW_ACCESS_KEY": "mlflow-1",
    "MINIO_MLFLOW_SECRET_KEY": "mlflow-secret-1",
    "MINIO_KSERVE_ACCESS_KEY": "kserve-1",
    "MINIO_KSERVE_SECRET_KEY": "kserve-secret-1",
    "MINIO_SINK_ACCESS_KEY": "sink-1",
    "MINIO_SINK_SECRET_KEY": "sink-secret-1",
}


class FakeAdmin:
    """The four MinioAdmin calls the module uses, with MinIO's state: policies, users, attachments."""

    def __init__(self) -> None:
        self.policies: dict[str, dict[str, Any]] = {}
        self.users: dict[str, str] = {}
        self.attached: dict[str, list[str]] = {}
        self.calls: list[str] = []

    def policy_add(self, name: str, policy: dict[str, Any]) -> str:
        self.calls.append(f"policy_add {name}")
        self.policies[name] = policy
        return ""

    def user_add(self, access: str, secret: str) -> str:
        self.calls.append(f"user_add {access}")
        self.users[access] = secret
        return ""

    def user_info(self, access: str) -> str:
        return json.dumps({"status": "enabled", "policyName": ",".join(self.attached.get(access, []))})

    def attach_policy(self, policies: list[str], user: str) -> str:
        self.calls.append(f"attach_policy {policies} {user}")
        already = set(policies) & set(self.attached.get(user, []))
        if already:  # MinIO: "The specified policy change is already in effect."
            raise RuntimeError("XMinioAdminPolicyChangeAlreadyApplied")
        self.attached.setdefault(user, []).extend(policies)
        return ""


def _allowed(policy: dict[str, Any]) -> dict[str, set[str]]:
    """Resource ARN -> the actions allowed on it."""
    allowed: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        for resource in statement["Resource"]:
            allowed.setdefault(resource, set()).update(statement["Action"])
    return allowed


def test_each_app_reaches_only_its_buckets() -> None:
    by_name = {app.name: _allowed(app.policy()) for app in APPS}
    arn = "arn:aws:s3:::{}".format
    assert set(by_name["steps"]) == {
        arn(names.DATA_BUCKET),
        arn(f"{names.DATA_BUCKET}/*"),
        arn(names.MODELS_BUCKET),
        arn(f"{names.MODELS_BUCKET}/*"),
        arn(names.SERVED_BUCKET),
        arn(f"{names.SERVED_BUCKET}/*"),
    }
    # monitoring reads what the payload sink wrote; only the sink writes there
    assert by_name["steps"][arn(f"{names.SERVED_BUCKET}/*")] == {"s3:GetObject"}
    assert set(by_name["sink"]) == {arn(names.SERVED_BUCKET), arn(f"{names.SERVED_BUCKET}/*")}
    assert "s3:PutObject" in by_name["sink"][arn(f"{names.SERVED_BUCKET}/*")]
    assert set(by_name["mlflow"]) == {arn(names.MLFLOW_BUCKET), arn(f"{names.MLFLOW_BUCKET}/*")}
    assert set(by_name["kserve"]) == {arn(names.MODELS_BUCKET), arn(f"{names.MODELS_BUCKET}/*")}
    # the storage-initializer only reads
    assert by_name["kserve"][arn(f"{names.MODELS_BUCKET}/*")] == {"s3:GetObject"}
    assert "s3:PutObject" in by_name["steps"][arn(f"{names.MODELS_BUCKET}/*")]
    for allowed in by_name.values():
        assert not any(
            action in {"s3:*", "admin:*", "s3:CreateBucket"} for acts in allowed.values() for action in acts
        )
        assert not any(resource.endswith(":::*") for resource in allowed)


def test_ensure_users_is_idempotent() -> None:
    admin = FakeAdmin()
    first = ensure_users(admin, app_keys(ENV))
    assert admin.users == {
        "steps-1": "steps-secret-1",
        "mlflow-1": "mlflow-secret-1",
        "kserve-1": "kserve-secret-1",
        "sink-1": "sink-secret-1",
    }
    assert admin.attached == {
        "steps-1": ["chicago-arrest-steps"],
        "mlflow-1": ["chicago-arrest-mlflow"],
        "kserve-1": ["chicago-arrest-kserve"],
        "sink-1": ["chicago-arrest-sink"],
    }
    assert all("policy attached" in line for line in first)
    assert not any("secret" in line for line in first)
    second = ensure_users(admin, app_keys(ENV))  # the Job runs on every up.sh
    assert all("policy already attached" in line for line in second)
    assert sum(c.startswith("attach_policy") for c in admin.calls) == 4


def test_missing_or_short_keys_are_one_line() -> None:
    with pytest.raises(UsersError, match="MINIO_KSERVE_ACCESS_KEY and MINIO_KSERVE_SECRET_KEY must be set"):
        app_keys({k: v for k, v in ENV.items() if "KSERVE" not in k})
    with pytest.raises(UsersError, match="MINIO_MLFLOW_SECRET_KEY must have at least 8 characters"):
        app_keys(ENV | {"MINIO_MLFLOW_SECRET_KEY": "short"})


def test_main_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert minio_users.main(ENV, admin=FakeAdmin()) == 0
    assert capsys.readouterr().out.count("user ") == 4
    assert minio_users.main({}, admin=FakeAdmin()) == 1
    assert capsys.readouterr().err.startswith("error: MINIO_STEPS_ACCESS_KEY")

    class Refusing(FakeAdmin):
        def policy_add(self, name: str, policy: dict[str, Any]) -> str:
            raise RuntimeError("403 AccessDenied")

    assert minio_users.main(ENV, admin=Refusing()) == 1
    assert "error: MinIO admin API: RuntimeError: 403 AccessDenied" in capsys.readouterr().err


def test_the_bucket_job_runs_it_with_the_root_keys_and_the_app_keys() -> None:
    from tests.code.test_cluster_scripts import PLATFORM

    (job,) = [d for d in yaml.safe_load_all((PLATFORM / "minio-buckets.yaml").read_text()) if d]
    (users,) = job["spec"]["template"]["spec"]["initContainers"]
    assert users["command"] == ["python", "-m", "chicago_arrest.cli.minio_users"]
    assert users["envFrom"] == [{"secretRef": {"name": "minio-users"}}]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in users["env"] if "valueFrom" in e}
    assert refs["ARREST_S3_ACCESS_KEY"] == {"name": "minio-root", "key": "MINIO_ROOT_USER"}
    assert refs["ARREST_S3_SECRET_KEY"] == {"name": "minio-root", "key": "MINIO_ROOT_PASSWORD"}
    # the up.sh names and the module's env names agree
    up = (PLATFORM.parents[1] / "kind-cluster" / "up.sh").read_text()
    assert 'MINIO_APPS="steps mlflow kserve sink"' in up
    assert [app.name for app in APPS] == ["steps", "mlflow", "kserve", "sink"]
