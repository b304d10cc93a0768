"""The server's answers: V2 ``InferResponse`` or V1 ``predictions``, with explanations when asked for."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from arrest_server.router import LoadedModel, Role
from arrest_server.validation import ARREST_OUTPUT, OUTPUT_DATATYPES, PROBABILITY_OUTPUT

#: V2 output holding each record's explanation (a JSON object per record) when the request asks for them.
EXPLANATION_OUTPUT = "explanation"


def build_response(
    model_name: str,
    payload: dict[str, Any] | InferRequest | bytes,
    request_id: str,
    served: LoadedModel,
    role: Role,
    probabilities: np.ndarray,
    arrest: np.ndarray,
) -> dict[str, Any] | InferResponse:
    """The answer to ``payload``: V2 outputs ``arrest_probability`` and ``arrest``, or V1 ``predictions``."""
    if isinstance(payload, InferRequest):
        # Built like kserve.utils.utils.get_predict_response (binary outputs, requested outputs), with
        # two named outputs and the response id always set (a request without "id" gets the routing id).
        outputs = []
        for name, values in (
            (PROBABILITY_OUTPUT, probabilities.astype(np.float64)),
            (ARREST_OUTPUT, arrest),
        ):
            datatype = OUTPUT_DATATYPES[name]
            if payload.use_binary_outputs:
                output = InferOutput(name=name, shape=[len(values)], datatype=datatype)
                output.set_data_from_numpy(values, binary_data=True)
            else:  # the values set_data_from_numpy would store, without its .item() per value
                output = InferOutput(name=name, shape=[len(values)], datatype=datatype, data=values.tolist())
            outputs.append(output)
        return InferResponse(
            response_id=request_id,
            model_name=model_name,
            infer_outputs=outputs,
            model_version=served.version,
            parameters={"model_role": role},
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )
    return {
        "predictions": probabilities.tolist(),
        "arrest": arrest.tolist(),
        "model_name": model_name,
        "model_version": served.version,
        "model_role": role,
        "id": request_id,
    }


def with_explanations(
    response: dict[str, Any] | InferResponse, explanations: list[dict[str, Any]], binary: bool = False
) -> dict[str, Any] | InferResponse:
    """The response with one explanation per record (V2: output ``explanation``, BYTES JSON; V1: a list)."""
    if isinstance(response, dict):
        return {**response, "explanations": explanations}
    output = InferOutput(name=EXPLANATION_OUTPUT, shape=[len(explanations)], datatype="BYTES")
    values = np.array([json.dumps(e, separators=(",", ":")) for e in explanations], dtype=object)
    output.set_data_from_numpy(values, binary_data=binary)
    response.outputs.append(output)
    return response
