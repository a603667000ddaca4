"""How a value reads in an error message: its kind, never the value itself (it may be a secret)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any


def kind_of(value: Any) -> str:
    """``"a number"``, ``"a list"``, ``"null"``…"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (date, datetime)):
        return "a date"
    return type(value).__name__
