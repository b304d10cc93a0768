"""Drive an ASGI app in process, as a server would, for the middleware tests."""

from __future__ import annotations

import asyncio
from typing import Any


def run_asgi(app: Any, scope: dict[str, Any], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Call ``app`` once with ``scope``; ``receive`` hands out ``messages`` then a disconnect.

    Returns:
        The messages the app sent.
    """
    queue = list(messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent
