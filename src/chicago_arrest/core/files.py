"""Writing a file so that a reader sees the old content or the new, never a part of it: written once.

The local object store (:class:`chicago_arrest.core.store.LocalStore`), the serving state
(:func:`chicago_arrest.registry.state.save_state`) and the model server's request log write through
:func:`write_atomically`.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import uuid
from pathlib import Path

#: How a temporary file of :func:`write_atomically` ends (``.tmp-<32 hex>``): listings leave such files out.
TMP_SUFFIX = re.compile(r"\.tmp-[0-9a-f]{32}$")


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``: a temporary file in the same folder, flushed to disk, then ``os.replace``.

    The folder is created when missing. A failure leaves the previous file as it was and no temporary file.

    Raises:
        OSError: When the file cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp-{uuid.uuid4().hex}", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
