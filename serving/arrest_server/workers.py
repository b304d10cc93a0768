"""``--workers N``: how the server process starts, supervises and stops its HTTP worker processes.

KServe 0.21 (``kserve.protocol.rest.multiprocess.server.RESTServerMultiProcess``) spawns each worker with the
whole model server pickled into the spawn pipe, and its supervisor loop pings every worker every 0.5 s,
killing and respawning one that does not answer within 5 s. Served by ``make serve`` (one worker per CPU) this
lost records and did not stop (issue 26):

* the parent writes the pickle (the loaded models, megabytes) synchronously into a 64 KiB pipe from its event
  loop; a worker that dies before reading it all (Ctrl-C reaches the whole process group while a worker still
  imports) leaves the parent blocked in ``write`` forever: its signal handler never gets the loop back, the
  port stays bound, the exited workers stay unreaped;
* a worker that takes more than 5 s to start (a busy machine) is killed and respawned, again and again;
* uvicorn re-raises a SIGTERM it handled once it has shut down gracefully; with the default action that kills
  the worker before ``atexit`` runs, so the request log's buffered records (up to ``flush_s`` of traffic) were
  never written.

What this module changes, and nothing else:

* :func:`handoff` / :func:`take_over`: the parent writes the served models to a file once and the pickle
  carries its path (a few KiB, which the pipe takes at once), so starting a worker never blocks the parent;
  the worker reads the same models from the file (:meth:`arrest_server.model.ArrestPredictor.__setstate__`).
* :class:`WorkerPool` (installed by :func:`use_worker_pool` in place of KServe's class): restarts a worker
  that crashed and nothing else (no ping); a worker that exits cleanly (SIGINT, SIGTERM) was asked to stop,
  and when every worker has stopped the server stops too.
* :func:`exit_cleanly_on_sigterm`: in a worker, SIGTERM raises :class:`SystemExit`, so a re-raised SIGTERM
  ends the process through ``atexit`` like Ctrl-C does.
* :func:`stop_on_shutdown`: every process stops its predictors (the request log is flushed) in the ASGI
  lifespan shutdown, after uvicorn has let the requests in flight finish.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pickle
import shutil
import signal
import tempfile
from pathlib import Path
from socket import socket
from typing import Any

from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess, RESTServerProcess

log = logging.getLogger(__name__)

#: Exit codes of a worker that was asked to stop (Ctrl-C, SIGTERM before or after our handler): not restarted.
STOPPED = frozenset({0, -signal.SIGINT, -signal.SIGTERM})

_handoff_dir: Path | None = None
_handed: list[tuple[Any, Path]] = []


def handoff(obj: Any) -> str:
    """Write ``obj`` (the served models) to a file of this process and return its path.

    The same object is written once; the folder is removed when this process exits.
    """
    global _handoff_dir
    for known, path in _handed:
        if known is obj:
            return str(path)
    if _handoff_dir is None:
        _handoff_dir = Path(tempfile.mkdtemp(prefix=f"arrest-server-{os.getpid()}-"))
        atexit.register(shutil.rmtree, _handoff_dir, True)
    path = _handoff_dir / f"models-{len(_handed)}.pickle"
    with path.open("wb") as out:
        pickle.dump(obj, out, protocol=pickle.HIGHEST_PROTOCOL)
    _handed.append((obj, path))
    return str(path)


def take_over(path: str) -> Any:
    """Read what :func:`handoff` wrote (in a worker process)."""
    with open(path, "rb") as handle:
        return pickle.load(handle)


def exit_cleanly_on_sigterm() -> None:
    """SIGTERM raises :class:`SystemExit` in this process, so ``atexit`` handlers run (see the module)."""

    def _exit(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, _exit)


def stop_on_shutdown(app: Any, served: dict[str, Any]) -> None:
    """Stop every predictor of ``served`` at the ASGI lifespan shutdown of ``app`` (once per process)."""
    if getattr(app.state, "arrest_stop_on_shutdown", False):
        return

    def _stop() -> None:
        for predictor in list(served.values()):
            try:
                predictor.stop()
            except Exception:  # one failing predictor must not keep the others from writing their log
                log.exception("stopping %s failed", getattr(predictor, "name", predictor))

    app.router.on_shutdown.append(_stop)
    app.state.arrest_stop_on_shutdown = True


class WorkerPool(RESTServerMultiProcess):
    """KServe's multi-process REST server, supervised without pings (see the module)."""

    async def keep_subprocess_alive(self, sockets: list[socket]) -> None:
        """Restart workers that crashed; when every worker was asked to stop, stop the server."""
        if self.should_exit.is_set():
            return
        stopped = 0
        for idx, process in enumerate(self._processes):
            code = process._process.exitcode  # polls (reaps) without blocking
            if code is None:
                continue  # running, or still starting: never judged by a ping
            if code in STOPPED:
                stopped += 1
                continue
            log.warning("worker process [%s] exited with %s: starting a new one", process.pid, code)
            replacement = RESTServerProcess(
                sockets, self._rest_server.run, log_config_file=self.log_config_file
            )
            replacement.start()
            self._processes[idx] = replacement
        if stopped == len(self._processes) and not getattr(self, "_stopping", False):
            self._stopping = True
            log.info("every worker process has stopped: stopping the server")
            signal.raise_signal(signal.SIGTERM)  # KServe's handler stops the gRPC server and the models too


def use_worker_pool() -> None:
    """Make KServe's ``ModelServer`` start :class:`WorkerPool` for ``--workers`` > 1."""
    from kserve import model_server

    model_server.RESTServerMultiProcess = WorkerPool
