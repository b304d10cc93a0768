"""The worker supervision of ``--workers N`` (arrest_server.workers), without starting processes."""

from __future__ import annotations

import asyncio
import inspect
import signal
from types import SimpleNamespace
from typing import Any

import pytest
from arrest_server import workers


class FakeProcess:
    def __init__(self, exitcode: int | None) -> None:
        self._process = SimpleNamespace(exitcode=exitcode)
        self.pid = 1
        self.started = False

    def start(self) -> None:
        self.started = True


def pool(codes: list[int | None]) -> Any:
    out = object.__new__(workers.WorkerPool)
    out._processes = [FakeProcess(c) for c in codes]
    out.should_exit = asyncio.Event()
    out._rest_server = SimpleNamespace(run=lambda sockets: None)
    out.log_config_file = None
    return out


def test_a_crashed_worker_is_restarted_a_stopped_or_starting_one_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[Any] = []
    monkeypatch.setattr(
        workers, "RESTServerProcess", lambda *a, **k: started.append(FakeProcess(None)) or started[-1]
    )
    raised: list[int] = []
    monkeypatch.setattr(signal, "raise_signal", raised.append)
    p = pool([None, -signal.SIGKILL, 0, 1])
    asyncio.run(p.keep_subprocess_alive([]))
    assert len(started) == 2
    assert all(s.started for s in started)
    assert p._processes[1] is started[0]
    assert p._processes[3] is started[1]
    assert p._processes[2]._process.exitcode == 0  # asked to stop: left alone
    assert raised == []


def test_when_every_worker_was_asked_to_stop_the_server_stops_once(monkeypatch: pytest.MonkeyPatch) -> None:
    raised: list[int] = []
    monkeypatch.setattr(signal, "raise_signal", raised.append)
    p = pool([0, -signal.SIGTERM])
    asyncio.run(p.keep_subprocess_alive([]))
    asyncio.run(p.keep_subprocess_alive([]))
    assert raised == [signal.SIGTERM]


def test_nothing_is_restarted_once_the_server_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "RESTServerProcess", lambda *a, **k: pytest.fail("restarted"))
    p = pool([-signal.SIGKILL])
    p.should_exit.set()
    asyncio.run(p.keep_subprocess_alive([]))


def test_models_are_handed_over_through_one_file_per_object(tmp_path: Any) -> None:
    models = {"champion": list(range(1000))}
    first, again = workers.handoff(models), workers.handoff(models)
    assert first == again
    assert workers.take_over(first) == models
    assert workers.handoff({"other": 1}) != first


def test_kserve_still_builds_its_multiprocess_server_by_the_name_we_replace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kserve import model_server

    monkeypatch.setattr(
        model_server, "RESTServerMultiProcess", model_server.RESTServerMultiProcess
    )  # restored
    assert "RESTServerMultiProcess(" in inspect.getsource(model_server.ModelServer.start)
    workers.use_worker_pool()
    assert model_server.RESTServerMultiProcess is workers.WorkerPool
