"""Typed field access on decoded JSON objects; every mismatch becomes an `InvalidFieldError`."""

from __future__ import annotations

from typing import Any

from .errors import InvalidFieldError


def _check_text(key: str, value: str) -> str:
    """Reject strings that cannot be encoded back to UTF-8 (lone surrogates from escapes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidFieldError(f"field {key!r} is not valid Unicode text") from err
    return value


def opt_str(obj: dict[str, Any], key: str) -> str | None:
    """Return a string field, None when absent, or raise when it has another type."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidFieldError(f"field {key!r} must be a string")
    return _check_text(key, value)


def req_str(obj: dict[str, Any], key: str) -> str:
    """Return a required string field."""
    value = opt_str(obj, key)
    if value is None:
        raise InvalidFieldError(f"field {key!r} is required")
    return value


def opt_int(obj: dict[str, Any], key: str) -> int | None:
    """Return an integral number field (bools refused, integral floats accepted)."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidFieldError(f"field {key!r} must be a number")
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidFieldError(f"field {key!r} must be an integer")
        return int(value)
    return value


def opt_bool(obj: dict[str, Any], key: str) -> bool | None:
    """Return a boolean field, None when absent."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise InvalidFieldError(f"field {key!r} must be a boolean")
    return value


def opt_obj(obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    """Return an object field, None when absent."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidFieldError(f"field {key!r} must be an object")
    return value


def req_obj(obj: dict[str, Any], key: str) -> dict[str, Any]:
    """Return a required object field."""
    value = opt_obj(obj, key)
    if value is None:
        raise InvalidFieldError(f"field {key!r} is required")
    return value


def opt_list(obj: dict[str, Any], key: str) -> list[Any] | None:
    """Return an array field, None when absent."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidFieldError(f"field {key!r} must be an array")
    return value
