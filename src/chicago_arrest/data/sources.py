"""Read the crime SOURCE files as raw text: one file, several, or a folder of them; CSV, gzip / bzip2 CSV, Parquet.

Every value is read as text (pandas ``string`` backed by Arrow, :data:`TEXT`; ``''`` and nulls are missing), so
nothing is lost or coerced before the data contract runs; CSV is read by Arrow's reader. :func:`source_files`
says which files a ``SOURCE`` names, :func:`iter_sources` reads them one by one. Landing them in the object
store is :mod:`chicago_arrest.data.ingest`'s job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from chicago_arrest.core.errors import IngestError
from chicago_arrest.core.schema import DATE, ID, RAW_COLUMNS

logger = logging.getLogger(__name__)

#: Text as ingest holds it: pandas strings backed by Arrow. A year of records takes ~150 MB instead of ~400 MB
#: as Python strings, and goes to and from Parquet without a conversion per value (docs/benchmarks.md).
TEXT = pd.StringDtype("pyarrow")


def to_raw_strings(frame: pd.DataFrame, leading: tuple[str, ...] = ()) -> pd.DataFrame:
    """Return ``frame`` with every column as pandas ``string`` (:data:`TEXT`; ``''`` and nulls -> ``<NA>``).

    Boolean columns become ``true`` / ``false`` like the Socrata CSV export.

    Args:
        frame: Any frame.
        leading: Columns to put first, in this order; those absent from ``frame`` are added as all-``<NA>``.

    Returns:
        A new frame with a fresh ``RangeIndex``; the other columns follow in their original order.
    """
    index = pd.RangeIndex(len(frame))
    names = list(leading) + [c for c in frame.columns if c not in set(leading)]
    columns: dict[str, pd.Series] = {}
    for name in names:
        if name in frame.columns:
            col = frame[name]
            if pd.api.types.is_bool_dtype(col):
                col = col.map({True: "true", False: "false"})
            text = col.astype(TEXT).reset_index(drop=True)
            columns[str(name)] = text.mask((text == "").fillna(False))
        else:
            columns[str(name)] = pd.Series(pd.NA, index=index, dtype=TEXT)
    return pd.DataFrame(columns, index=index)


#: File names read as crime records: CSV (also gzip / bzip2 compressed) and Parquet.
SOURCE_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".parquet", ".pq")


def read_source_file(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file as text: CSV as text (leading zeros kept), ``''`` -> missing.

    CSV is read by Arrow's reader (every column as text; gzip and bzip2 by their extension): about half the CPU
    time and memory of pandas' reader on a year of records, the same text.

    Args:
        path: ``.csv`` (optionally compressed: ``.csv.gz``, ``.csv.bz2``) or ``.parquet`` / ``.pq``.

    Returns:
        The table, every column pandas ``string`` (:data:`TEXT`).

    Raises:
        FileNotFoundError: When the file does not exist.
        IngestError: When the format is not recognised or the file cannot be read as CSV.
    """
    if not path.is_file():
        raise FileNotFoundError(f"source file not found: {path}")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return to_raw_strings(pd.read_parquet(path))
    if ".csv" not in suffixes:
        raise IngestError(f"unsupported source file {path}: expected .csv (.csv.gz, .csv.bz2) or .parquet")
    if suffixes[-1] not in (".csv", ".gz", ".bz2"):  # e.g. .csv.zip: pandas' reader knows more compressions
        return to_raw_strings(pd.read_csv(path, dtype=str, keep_default_na=False))
    import pyarrow as pa
    import pyarrow.csv as pv

    try:
        names = pv.open_csv(path).schema.names
        table = pv.read_csv(
            path,
            convert_options=pv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise IngestError(f"{path}: not a readable CSV file: {exc}") from exc
    return to_raw_strings(table.to_pandas(types_mapper={pa.string(): TEXT}.get))


def source_files(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """The crime files a ``SOURCE`` names: one file, files separated by commas, or folders.

    A folder stands for the crime files in it (:data:`SOURCE_SUFFIXES`, sorted by name) whose header has
    ``id`` and ``date``; other tables next to them (police stations, IUCR codes) are left out.

    Args:
        source: A path, ``a.csv.gz,b.csv.gz``, a folder, or a list of them.

    Returns:
        The files, in the order given (a folder's sorted), each once.

    Raises:
        FileNotFoundError: When a named file or folder does not exist.
        IngestError: When no crime file is found.
    """
    parts = [source] if isinstance(source, str | Path) else list(source)
    named = [Path(p.strip()) for part in parts for p in str(part).split(",") if p.strip()]
    files: list[Path] = []
    for path in named:
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.is_file() and _is_source_name(p) and _has_crime_fields(p)
            )
            logger.info("%s: %d crime file(s): %s", path, len(found), ", ".join(p.name for p in found))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"source file not found: {path}")
    unique = list(dict.fromkeys(p.resolve() for p in files))
    if not unique:
        raise IngestError(f"no crime file (CSV or Parquet with id and date) in {', '.join(map(str, named))}")
    return unique


def _is_source_name(path: Path) -> bool:
    return path.name.lower().endswith(SOURCE_SUFFIXES)


def _has_crime_fields(path: Path) -> bool:
    """Whether a file's header names ``id`` and ``date`` (a crimes table, not the stations or IUCR codes)."""
    try:
        if path.name.lower().endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            names = set(pq.read_schema(path).names)
        else:
            import pyarrow.csv as pv

            names = set(pv.open_csv(path).schema.names)
    except Exception:  # unreadable: not a crimes table
        return False
    return {ID, DATE} <= names


def read_sources(paths: Sequence[Path]) -> pd.DataFrame:
    """Read crime files as one table of text (their columns' union; a field a file lacks is missing).

    Raises:
        IngestError: Naming a file that lacks ``id`` or ``date``.
    """
    frames = list(iter_sources(paths))
    if len(frames) == 1:
        return frames[0]
    names = list(dict.fromkeys(c for f in frames for c in f.columns))
    return pd.concat([to_raw_strings(f, tuple(names)) for f in frames], ignore_index=True)


def iter_sources(paths: Sequence[Path]) -> Iterator[pd.DataFrame]:
    """Read crime files as text, one table per file, as each is read.

    Raises:
        IngestError: Naming a file that lacks ``id`` or ``date``.
    """
    for path in paths:
        frame = read_source_file(path)
        missing = [c for c in (ID, DATE) if c not in frame.columns]
        if missing:
            raise IngestError(
                f"{path} lacks column(s) {', '.join(missing)}: expected the Socrata API field names "
                f"({', '.join(RAW_COLUMNS)})"
            )
        logger.info("read %s: %d records", path, len(frame))
        yield frame
