"""The gate's rule (registry.decide): a margin on top of the noise, and calibration in every test month."""

from __future__ import annotations

from chicago_arrest.release.gate import decide

CHAMPION = {"roc_auc": 0.890, "ece": 0.02}


def challenger(roc_auc: float, se: float = 0.005, ece: float = 0.02, worst: float = 0.03) -> dict:
    return {"roc_auc": roc_auc, "ece": ece, "roc_auc_se": se, "ece_worst_month": worst}


def test_a_gain_within_the_noise_is_rejected() -> None:
    passed, reason = decide(challenger(0.894), CHAMPION, margin=0.0, max_ece=0.05)
    assert passed is False
    assert "bootstrap SE 0.0050" in reason


def test_a_gain_beyond_the_noise_passes() -> None:
    assert decide(challenger(0.896), CHAMPION, margin=0.0, max_ece=0.05)[0] is True


def test_noise_multiple_and_margin_add_up() -> None:
    assert decide(challenger(0.896), CHAMPION, margin=0.0, max_ece=0.05, noise=2.0)[0] is False
    assert decide(challenger(0.896), CHAMPION, margin=0.002, max_ece=0.05)[0] is False
    assert decide(challenger(0.880), CHAMPION, margin=-1.0, max_ece=0.05)[0] is True


def test_the_worst_test_month_must_be_calibrated() -> None:
    passed, reason = decide(challenger(0.95, worst=0.08), CHAMPION, margin=0.0, max_ece=0.05)
    assert passed is False
    assert "worst test month 0.0800" in reason


def test_metrics_without_noise_fall_back_to_the_margin() -> None:
    assert decide({"roc_auc": 0.8925, "ece": 0.02}, CHAMPION, margin=0.002, max_ece=0.05)[0] is True


def test_first_model_passes_and_notes_a_bad_month() -> None:
    passed, reason = decide(challenger(0.8, worst=0.09), None, margin=0.0, max_ece=0.05)
    assert passed is True
    assert "0.0900 exceeds" in reason
