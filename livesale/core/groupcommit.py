"""Group commit: concurrent writes to one session share one transaction.

Every acknowledged order must be committed before its response, and each
commit costs a round of statements (and on PostgreSQL a WAL flush). When
many single orders for one session arrive at once, the first caller runs its
write alone; whoever arrives meanwhile queues, and the next leader writes the
whole queue in one transaction and one Redis call. Nobody answers before the
transaction holding their order has committed, so durability is unchanged;
the cost per order falls as the load rises.

Works with threads and with gevent (whose monkey-patching makes the locks
and events below cooperative).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T]):
    __slots__ = ("item", "outcome", "done", "lead")

    def __init__(self, item: T):
        self.item = item
        self.outcome: object = None
        self.done = threading.Event()
        self.lead = False


class GroupCommit(Generic[T]):
    """Runs ``execute`` over groups of items submitted concurrently under one key."""

    def __init__(self, *, max_group: int = 500):
        self._mutex = threading.Lock()
        #: key -> items waiting; the key is present while a leader works on it.
        self._waiting: dict[Hashable, list[_Slot[T]]] = {}
        self.max_group = max_group

    def run(self, key: Hashable, item: T, execute: Callable[[Sequence[T]], Sequence[object]]) -> object:
        """Submit ``item``; returns its outcome (a result or an exception instance).

        ``execute`` gets the items of one group and returns one outcome per
        item, in order. If it raises, every item of the group gets the error.
        """
        slot: _Slot[T] = _Slot(item)
        with self._mutex:
            waiting = self._waiting.get(key)
            if waiting is None:
                self._waiting[key] = []
                group = [slot]
            else:
                waiting.append(slot)
                group = []
        if not group:
            slot.done.wait()
            if not slot.lead:
                return slot.outcome
            with self._mutex:
                # Promoted: take the queue, ourselves first.
                waiting = self._waiting[key]
                group, self._waiting[key] = waiting[: self.max_group], waiting[self.max_group :]
        try:
            outcomes = list(execute([s.item for s in group]))
            if len(outcomes) != len(group):  # pragma: no cover - a programming error
                raise RuntimeError("execute returned the wrong number of outcomes")
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the group
            outcomes = [exc] * len(group)
        for s, outcome in zip(group, outcomes, strict=True):
            s.outcome = outcome
            if s is not slot:
                s.done.set()
        with self._mutex:
            waiting = self._waiting[key]
            if waiting:
                waiting[0].lead = True
                waiting[0].done.set()
            else:
                del self._waiting[key]
        return slot.outcome
