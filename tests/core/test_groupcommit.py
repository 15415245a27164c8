"""Group commit: every caller gets its own outcome, groups form under load, errors reach the whole group."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from livesale.core.groupcommit import GroupCommit


def test_concurrent_submissions_are_grouped_and_each_gets_its_outcome() -> None:
    commit: GroupCommit[int] = GroupCommit()
    groups: list[list[int]] = []

    def execute(items: Sequence[int]) -> list[object]:
        groups.append(list(items))
        time.sleep(0.005)  # a commit takes time; others queue meanwhile
        return [item * 10 for item in items]

    results: dict[int, object] = {}

    def submit(i: int) -> None:
        results[i] = commit.run("session-1", i, execute)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == {i: i * 10 for i in range(200)}
    assert sorted(i for g in groups for i in g) == list(range(200))  # each item executed exactly once
    assert max(len(g) for g in groups) > 1  # grouping happened
    assert len(groups) < 200


def test_an_error_reaches_every_caller_of_its_group_and_the_next_group_still_runs() -> None:
    commit: GroupCommit[int] = GroupCommit()
    calls = 0

    def execute(items: Sequence[int]) -> list[object]:
        nonlocal calls
        calls += 1
        if calls == 1:
            time.sleep(0.02)
            raise RuntimeError("database went away")
        return list(items)

    outcomes: dict[int, object] = {}

    def submit(i: int) -> None:
        outcomes[i] = commit.run("k", i, execute)

    first = threading.Thread(target=submit, args=(0,))
    first.start()
    time.sleep(0.005)
    rest = [threading.Thread(target=submit, args=(i,)) for i in range(1, 6)]
    for t in rest:
        t.start()
    for t in [first, *rest]:
        t.join(timeout=10)
    assert isinstance(outcomes[0], RuntimeError)
    assert [outcomes[i] for i in range(1, 6)] == [1, 2, 3, 4, 5]


def test_keys_are_independent() -> None:
    commit: GroupCommit[str] = GroupCommit()
    seen: list[set[str]] = []

    def execute(items: Sequence[str]) -> list[object]:
        seen.append({item.split(":")[0] for item in items})
        time.sleep(0.002)
        return list(items)

    threads = [
        threading.Thread(target=commit.run, args=(key, f"{key}:{i}", execute))
        for i in range(30)
        for key in ("a", "b")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert all(len(keys) == 1 for keys in seen)  # a group never mixes sessions


@pytest.mark.parametrize("size", [1, 3])
def test_max_group_bounds_a_group(size: int) -> None:
    commit: GroupCommit[int] = GroupCommit(max_group=size)
    sizes: list[int] = []

    def execute(items: Sequence[int]) -> list[object]:
        sizes.append(len(items))
        time.sleep(0.003)
        return list(items)

    threads = [threading.Thread(target=commit.run, args=("k", i, execute)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sum(sizes) == 40 and max(sizes) <= size
