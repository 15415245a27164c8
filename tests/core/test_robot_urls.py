"""Which robot URLs livesale calls (core.webhook_urls) and how the sender calls them: https only, never a
private address (checked after resolution, again at each attempt, and connected to as checked), no
credentials, no redirect followed. Real sockets and a real receiver on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from livesale.config import load_settings
from livesale.core import robot_messages
from livesale.core.errors import InvalidInput
from livesale.core.robot_sender import RobotSender, post_json
from livesale.core.webhook_urls import MAX_URL_LENGTH, check_robot_url, resolve_robot_url
from tests.robot_receiver import Receiver

MESSAGE = robot_messages.Message(title="t", lines=["l"], links=[], event_id=1)


def refused(url: str, *, allow_http: bool = False, allow_private: bool = False) -> str:
    with pytest.raises(InvalidInput) as caught:
        check_robot_url(url, allow_http=allow_http, allow_private=allow_private)
    assert caught.value.field == "url"
    return caught.value.code


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def test_settings_turn_the_two_exceptions_on() -> None:
    assert load_settings({})["WEBHOOK_ALLOW_HTTP"] is False and load_settings({})["WEBHOOK_ALLOW_PRIVATE"] is False
    on = load_settings({"LIVESALE_WEBHOOK_ALLOW_HTTP": "1", "LIVESALE_WEBHOOK_ALLOW_PRIVATE": "1"})
    assert on["WEBHOOK_ALLOW_HTTP"] is True and on["WEBHOOK_ALLOW_PRIVATE"] is True


def test_http_is_refused_unless_allowed() -> None:
    assert refused("http://8.8.8.8/robot/send?access_token=x") == "url_not_https"
    check_robot_url("http://8.8.8.8/robot/send?access_token=x", allow_http=True, allow_private=False)
    check_robot_url("https://8.8.8.8/robot/send?access_token=x", allow_http=False, allow_private=False)
    for url in ("ftp://8.8.8.8/x", "file:///etc/passwd", "gopher://8.8.8.8/", "8.8.8.8/x"):
        assert refused(url, allow_http=True) in ("url_not_https", "url_invalid")


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hook", "https://127.8.9.10/hook", "https://10.1.2.3/hook", "https://172.16.0.1/",
    "https://192.168.1.1/", "https://169.254.169.254/latest/meta-data/", "https://[::1]/hook",
    "https://[fe80::1]/", "https://[fc00::1]/", "https://[fec0::1]/", "https://[ff02::1]/", "https://0.0.0.0/", "https://[::]/", "https://100.64.0.1/",
    "https://224.0.0.1/", "https://240.0.0.1/", "https://255.255.255.255/",
    "https://[::ffff:127.0.0.1]/", "https://[::ffff:10.0.0.1]/", "https://[2002:7f00:1::]/",  # mapped, 6to4
    "https://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
    "https://2130706433/", "https://0x7f.1/", "https://017700000001/",  # 127.0.0.1 spelled otherwise
    "https://localhost/hook", "https://LocalHost:8443/hook",  # a name that resolves to loopback
])
def test_private_loopback_and_link_local_are_refused_unless_allowed(url: str) -> None:
    assert refused(url) == "url_private"
    check_robot_url(url, allow_http=False, allow_private=True)


def test_public_addresses_pass() -> None:
    for url in ("https://8.8.8.8/", "https://[2001:4860:4860::8888]/", "https://[64:ff9b::808:808]/",
                "https://[::ffff:8.8.8.8]/",
                "https://1.1.1.1:8443/robot/send?access_token=abc"):
        check_robot_url(url, allow_http=False, allow_private=False)


def test_credentials_length_fragments_and_spaces_are_refused() -> None:
    assert refused("https://user:pw@8.8.8.8/x") == "url_credentials"
    assert refused("https://user@8.8.8.8/x") == "url_credentials"
    assert refused("https://8.8.8.8/" + "a" * MAX_URL_LENGTH) == "url_too_long"
    assert refused("https://8.8.8.8/x#frag") == "url_invalid"
    assert refused("https://8.8.8.8/x y") == "url_invalid"
    assert refused("https://8.8.8.8:99999/") == "url_invalid"
    assert refused("") == "url_missing"
    assert refused("https:///x") == "url_invalid"


def test_a_name_that_does_not_resolve_is_accepted_and_not_sent_to() -> None:
    check_robot_url("https://no-such-host.invalid/x", allow_http=False, allow_private=False)
    with pytest.raises(InvalidInput) as caught:
        resolve_robot_url("https://no-such-host.invalid/x", allow_http=False, allow_private=False)
    assert caught.value.code == "url_unresolvable"
    sender = RobotSender(None)  # type: ignore[arg-type]
    outcome = sender.attempt(kind="wecom", url="https://no-such-host.invalid/x", secret=None, message=MESSAGE)
    assert not outcome.ok and outcome.error == "not sent: the host no-such-host.invalid cannot be found"


def test_every_address_of_a_name_must_be_public(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def two_addresses(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        if host == "mixed.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", port)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
    assert refused("https://mixed.test/x") == "url_private"


def test_the_request_goes_to_the_address_that_was_checked(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name answers 127.0.0.1 when checked and 127.0.0.2 (nobody there) afterwards.
    The sender connects to the checked address; a second lookup would have failed to connect."""
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1"])

    def rebinding(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        if host == "robot.rebind.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers, "127.0.0.2"), port))]
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    url = f"http://robot.rebind.test:{receiver.port}/wecom/hook?key=k"
    target = resolve_robot_url(url, allow_http=True, allow_private=True)
    assert target.addresses == ("127.0.0.1",)
    request = robot_messages.build_request(kind="wecom", url=url, secret=None, message=MESSAGE,
                                           now=datetime.now(UTC))
    status, body = post_json(target, request, connect_timeout_s=5, total_timeout_s=10)
    assert status == 200 and body == b'{"errcode": 0, "errmsg": "ok"}'
    [got] = receiver.requests
    assert got.headers["Host"] == f"robot.rebind.test:{receiver.port}" and got.query == {"key": ["k"]}


def test_the_sender_checks_again_at_each_attempt(receiver: Receiver) -> None:
    """A URL stored when private addresses were allowed is not called once they are not."""
    sender = RobotSender(None, allow_http=True, allow_private=False)  # type: ignore[arg-type]
    outcome = sender.attempt(kind="wecom", url=receiver.url("wecom"), secret=None, message=MESSAGE)
    assert not outcome.ok and outcome.status is None and "not sent" in outcome.error and "non-public" in outcome.error
    https_only = RobotSender(None, allow_http=False, allow_private=True)  # type: ignore[arg-type]
    assert "https" in https_only.attempt(kind="wecom", url=receiver.url("wecom"), secret=None, message=MESSAGE).error
    assert receiver.requests == []


def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    elsewhere = Receiver().start()
    try:
        receiver.mode, receiver.redirect_to = "redirect", elsewhere.url("wecom")
        sender = RobotSender(None, allow_http=True, allow_private=True)  # type: ignore[arg-type]
        outcome = sender.attempt(kind="wecom", url=receiver.url("wecom"), secret=None, message=MESSAGE)
        assert not outcome.ok and outcome.status == 302
        assert len(receiver.requests) == 1 and elsewhere.requests == []
    finally:
        elsewhere.stop()


def test_a_receiver_that_never_answers_is_cut_off_at_the_total_timeout(receiver: Receiver) -> None:
    receiver.mode = "hang"
    sender = RobotSender(None, allow_http=True, allow_private=True, total_timeout_s=0.5)  # type: ignore[arg-type]
    outcome = sender.attempt(kind="wecom", url=receiver.url("wecom"), secret=None, message=MESSAGE)
    assert not outcome.ok and outcome.error.startswith("timed out")
    assert receiver.wait_for(lambda: receiver.requests[0].closed_at is not None, timeout=10)


def test_an_answer_that_trickles_forever_is_cut_off_at_the_total_timeout(receiver: Receiver) -> None:
    """Each byte comes well within any socket timeout: only the total deadline ends it."""
    receiver.mode = "trickle"
    sender = RobotSender(None, allow_http=True, allow_private=True, total_timeout_s=0.5)  # type: ignore[arg-type]
    outcomes: list[Any] = []
    attempt = threading.Thread(target=lambda: outcomes.append(
        sender.attempt(kind="wecom", url=receiver.url("wecom"), secret=None, message=MESSAGE)), daemon=True)
    attempt.start()
    attempt.join(30)
    receiver.release.set()
    assert outcomes, "the sender was still reading the answer"
    assert not outcomes[0].ok and outcomes[0].error.startswith("timed out")


def test_a_closed_port_is_a_connection_error(receiver: Receiver) -> None:
    url = receiver.url("wecom")
    receiver.stop()
    sender = RobotSender(None, allow_http=True, allow_private=True)  # type: ignore[arg-type]
    outcome = sender.attempt(kind="wecom", url=url, secret=None, message=MESSAGE)
    assert not outcome.ok and outcome.error == "connection refused"
