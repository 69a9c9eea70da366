"""A work queue of ModelDeployments to reconcile, as controller-runtime has.

Watch events (of the ModelDeployment itself and of the Deployments and Services it owns) only say
"look at this one again"; many events for one object collapse into one pending entry, one object
is never reconciled by two workers at once (an event arriving meanwhile queues it once more), and
timed wake-ups (a pause ending, the next measurement) keep only the earliest deadline per object.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple


class Key(NamedTuple):
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class WorkQueue:
    def __init__(self) -> None:
        self._ready: asyncio.Queue[Key] = asyncio.Queue()
        self._pending: set[Key] = set()
        self._active: set[Key] = set()
        self._again: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}

    def add(self, key: Key) -> None:
        """Reconcile `key` soon (once, however often it is added before a worker takes it)."""
        if key in self._active:
            self._again.add(key)
        elif key not in self._pending:
            self._pending.add(key)
            self._ready.put_nowait(key)

    def add_after(self, key: Key, delay: float) -> None:
        """Reconcile `key` after `delay` seconds, unless an earlier wake-up is already set."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(delay, 0.0)
        timer = self._timers.get(key)
        if timer is not None and not timer.cancelled() and timer.when() <= deadline:
            return
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(deadline, self._fire, key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> Key:
        """The next key to reconcile; call `done(key)` when finished with it."""
        key = await self._ready.get()
        self._pending.discard(key)
        self._active.add(key)
        return key

    def done(self, key: Key) -> None:
        self._active.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)

    def forget(self, key: Key) -> None:
        """The object is gone: drop its timed wake-up."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def __len__(self) -> int:
        return len(self._pending)
