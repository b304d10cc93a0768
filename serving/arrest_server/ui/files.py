"""Scoring a CSV file for the page: every record the API would accept is scored, every other one is named.

The file is read in memory (nothing is written on the server) with the Socrata API field names as headers
(``primary_type``; the portal export's ``Primary Type`` is accepted too). Each record is checked by the same
parser as a V1 request (:func:`arrest_server.validation.parse_v1`), so a refused record gets the API's own
message. The API refuses a whole request for one bad record; a file is scored without its bad records, and the
page lists them: when the whole file does not parse, each record is parsed on its own to find the bad ones.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from kserve.errors import InvalidInput

from arrest_server.router import LoadedModel, Role
from arrest_server.validation import TooManyRows, parse_v1
from chicago_arrest.core.schema import PREDICTION_REQUIRED

#: Columns the scored file gets (after the file's own; ``arrest`` may be the file's label, so it is kept).
OUTPUT_COLUMNS = ("arrest_probability", "predicted_arrest", "model_version", "model_role")
_ONE_ROW = " in row(s) 0"


@dataclass
class ScoredFile:
    """The outcome of one file.

    Attributes:
        rows: Records in the file.
        refused: ``(row, message)`` per refused record; rows count from 1 (the first record after the header).
        csv: The scored records as CSV: a ``row`` column, the file's columns, then :data:`OUTPUT_COLUMNS`.
        version: The model version that scored.
        role: Its role.
        threshold: Its decision threshold.
    """

    rows: int
    refused: list[tuple[int, str]]
    csv: str
    version: str
    role: Role
    threshold: float

    @property
    def scored(self) -> int:
        """Records scored."""
        return self.rows - len(self.refused)

    def as_dict(self) -> dict[str, Any]:
        """The page's answer."""
        return {
            "rows": self.rows,
            "scored": self.scored,
            "refused": [{"row": row, "error": message} for row, message in self.refused],
            "model_version": self.version,
            "model_role": self.role,
            "threshold": self.threshold,
            "csv": self.csv,
        }


def _column_name(header: str) -> str:
    """``Primary Type`` → ``primary_type`` (the portal's export headers to the API's field names)."""
    return re.sub(r"[\s-]+", "_", header.strip()).lower()


def read_csv(body: bytes) -> pd.DataFrame:
    """The file's records, every value text (``""`` for an empty field).

    Raises:
        InvalidInput: When the body is not UTF-8 CSV text with a header line and at least one record.
    """
    if not body.strip():
        raise InvalidInput(
            "the file is empty: expected a CSV file with a header line (date, primary_type, iucr, ...)"
        )
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the file is not UTF-8 text (byte {exc.start}): expected a CSV file") from None
    try:
        names = [_column_name(c) for c in next(csv.reader(io.StringIO(text)))]
        duplicated = sorted({c for c in names if names.count(c) > 1})
        if duplicated:
            raise InvalidInput(f"the file has the column(s) {', '.join(duplicated)} more than once")
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, header=0, names=names)
    except (pd.errors.ParserError, csv.Error, ValueError) as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"the file is not a readable CSV file: {first}") from None
    missing = [name for name in PREDICTION_REQUIRED if name not in names]
    if missing:  # the V1 API's message, then what the file has
        raise InvalidInput(
            f"missing required field(s): {', '.join(missing)} (required: {', '.join(PREDICTION_REQUIRED)}); "
            f"the file's columns: {', '.join(names[:25])}"
        )
    if frame.empty:
        raise InvalidInput("the file has a header line but no records")
    return frame


def _instances(frame: pd.DataFrame) -> list[dict[str, Any]]:
    values = frame.to_numpy(dtype=object)
    values[values == ""] = None
    names = list(frame.columns)
    return [dict(zip(names, row, strict=True)) for row in values]


def one_record_message(message: str) -> str:
    """The API's message about a request of one record, without its row number (``in row(s) 0``)."""
    return message.replace(_ONE_ROW, "")


def score_file(body: bytes, served: LoadedModel, role: Role, max_rows: int) -> ScoredFile:
    """Read, check and score a CSV file with one model.

    Args:
        body: The file.
        served: The model that scores it.
        role: Its role.
        max_rows: Most records a file may have (the API's ``max_rows``).

    Returns:
        The :class:`ScoredFile`.

    Raises:
        InvalidInput: When the file cannot be read, or no record can be scored (the message says why).
        TooManyRows: More records than ``max_rows``.
    """
    frame = read_csv(body)
    if len(frame) > max_rows:
        raise TooManyRows(
            f"the file has {len(frame):,} records; at most {max_rows:,} are accepted (ARREST_SERVER_MAX_ROWS)"
        )
    instances = _instances(frame)
    refused: list[tuple[int, str]] = []
    keep = np.ones(len(frame), dtype=bool)
    try:
        parsed = parse_v1({"instances": instances}, max_rows)
    except InvalidInput:
        for i, instance in enumerate(instances):
            try:
                parse_v1({"instances": [instance]}, max_rows)
            except InvalidInput as exc:
                refused.append((i + 1, one_record_message(str(exc))))
                keep[i] = False
        if not keep.any():
            reasons = sorted({message for _, message in refused})
            raise InvalidInput(
                f"no record of the file can be scored ({len(refused):,} refused): " + "; ".join(reasons[:3])
            ) from None
        parsed = parse_v1({"instances": [x for x, k in zip(instances, keep, strict=True) if k]}, max_rows)
    probabilities = served.model.predict_arrest_probability(parsed.columns)
    out = frame.loc[keep].copy()
    out.insert(0, "row", np.flatnonzero(keep) + 1)
    out["arrest_probability"] = probabilities
    out["predicted_arrest"] = np.where(probabilities >= served.model.threshold, "true", "false")
    out["model_version"] = served.version
    out["model_role"] = role
    return ScoredFile(
        rows=len(frame),
        refused=refused,
        csv=out.to_csv(index=False),
        version=served.version,
        role=role,
        threshold=float(served.model.threshold),
    )
