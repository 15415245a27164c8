"""JSON for answers and log lines: orjson where it is installed, the standard ``json`` where it is not.

orjson is the fast path (it encodes an answer several times faster), but it
publishes no wheel for Python 3.15 yet and its source build needs Rust, so
livesale depends on it only below 3.15 (pyproject.toml) and falls back here.
The fallback is set up to write the same bytes for what livesale sends:
compact separators, UTF-8 as is, keys that are not strings written as
strings, and the types orjson encodes natively (UUIDs, dates and times,
dataclasses, enums) encoded as orjson does. The one difference known:
floats below 1e-4 in magnitude (orjson ``0.00001``, json ``1e-05``), which
no answer holds (money is integer fen). tests/live/test_without_orjson.py
compares the two on the app's real answers.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import uuid
from collections.abc import Callable
from typing import Any

try:
    import orjson
except ImportError:  # no wheel for this Python: the standard library encodes
    orjson = None  # type: ignore[assignment]

#: Raised by :func:`loads` for text that is not JSON (a ``ValueError``).
JSONDecodeError: type[ValueError] = orjson.JSONDecodeError if orjson is not None else json.JSONDecodeError

FAST = orjson is not None


def _native(obj: Any) -> Any:
    """What orjson encodes without a ``default``, in the form it writes."""
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, datetime.datetime | datetime.date | datetime.time):
        return obj.isoformat()
    if isinstance(obj, enum.Enum):
        return obj.value
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {field.name: getattr(obj, field.name) for field in dataclasses.fields(obj)}
    raise TypeError(f"Type is not JSON serializable: {type(obj).__name__}")


def dumps(obj: Any, *, default: Callable[[Any], Any] | None = None) -> bytes:
    """``obj`` as compact UTF-8 JSON; keys that are not strings become strings."""
    if orjson is not None:
        return orjson.dumps(obj, default=default, option=orjson.OPT_NON_STR_KEYS)

    def fallback(value: Any) -> Any:
        try:
            return _native(value)
        except TypeError:
            if default is None:
                raise
            return default(value)

    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=fallback).encode()


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


def loads(data: str | bytes) -> Any:
    """Parse JSON, refusing what orjson refuses with :data:`JSONDecodeError`: ``NaN`` and ``Infinity``
    (the stdlib takes them by default), nesting too deep, numbers too long to convert."""
    if orjson is not None:
        return orjson.loads(data)
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except json.JSONDecodeError:
        raise
    except (RecursionError, ValueError) as exc:
        raise json.JSONDecodeError(str(exc), "", 0) from None
