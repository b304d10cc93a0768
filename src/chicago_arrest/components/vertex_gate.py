"""Vertex gate: the project's promotion rule against the endpoint's champion, and the traffic split."""

from typing import NamedTuple

from kfp import dsl

from chicago_arrest.components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def vertex_gate(
    evaluation: dict,
    champion: dict,
    promotion_margin: float,
    max_ece: float,
    canary_percent: int,
) -> NamedTuple("Outputs", action=str, traffic_split=dict, labels=dict, decision=dict):  # type: ignore[valid-type]
    """Promote, canary or leave serving as it is; the labels record the challenger's metrics."""
    from collections import namedtuple

    from chicago_arrest.steps import run_step
    from chicago_arrest.steps.vertex import vertex_gate_step

    decision = run_step(
        vertex_gate_step,
        evaluation,
        champion,
        margin=promotion_margin,
        max_ece=max_ece,
        canary_percent=canary_percent,
    )
    outputs = namedtuple("outputs", ["action", "traffic_split", "labels", "decision"])
    return outputs(decision["action"], decision["traffic_split"], decision["labels"], decision)
