"""A push ticker that keeps failing (Redis down: ten ticks a second) must not flood the log."""

from __future__ import annotations

import logging

import pytest
import redis

from livesale.live.ticker import FailureLog


def test_a_failure_that_goes_on_is_logged_once_then_counted_then_its_end_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("livesale.test.ticker")
    failing = FailureLog(logger, "push tick", every_s=3600)
    down = redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    with caplog.at_level(logging.INFO, logger="livesale.test.ticker"):
        for _ in range(100):  # ten seconds of ticks
            failing.failed(down)
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("ERROR", "push tick failed")]
        assert caplog.records[0].exc_info is not None  # the first one carries its traceback
        failing.failed(TimeoutError("Timeout reading from socket"))  # another failure: logged in full
        assert len(caplog.records) == 2 and caplog.records[1].exc_info is not None
        failing.succeeded()
        failing.succeeded()  # only the change is logged
        assert [(r.levelname, r.getMessage().split(" in ")[0]) for r in caplog.records[2:]] == [
            ("WARNING", "push tick works again after 101 failures")
        ]
        caplog.clear()
        failing.failed(down)  # a new outage starts a new count
        failing.succeeded()
        assert caplog.records[-1].getMessage().startswith("push tick works again after 1 failures")


def test_a_long_failure_gets_a_line_with_the_count_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("livesale.test.ticker")
    failing = FailureLog(logger, "push tick", every_s=0)
    down = redis.ConnectionError("Connection refused.")
    with caplog.at_level(logging.INFO, logger="livesale.test.ticker"):
        for _ in range(3):
            failing.failed(down)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "push tick failed"
    assert lines[1].startswith("push tick still failing: 2 failures in ")
    assert lines[2].startswith("push tick still failing: 3 failures in ")
    assert lines[2].endswith("(ConnectionError: Connection refused.)")
