"""Cursors: stable pagination in the order ``created_at, id`` (newest first, or oldest first).

A cursor is the position of the last row of a page (:func:`encode_cursor`); the next page is the rows
strictly after it (:func:`after_cursor`). A cursor of the oldest-first order is marked, so that it is
never read in the other order.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import polars as pl

from .errors import fail
from .fields import as_utc

def encode_cursor(created_at: datetime, event_id: str, *, descending: bool = True) -> str:
    """The position of a row; a cursor of the oldest-first order is marked (``+``) so that it is never
    read in the other order."""
    micros = int((as_utc(created_at) - datetime(1970, 1, 1, tzinfo=timezone.utc)) / timedelta(microseconds=1))
    mark = "" if descending else "+"
    return base64.urlsafe_b64encode(f"{mark}{micros}:{event_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, descending: bool = True) -> tuple[datetime, str]:
    """The row position a cursor holds; a :class:`FilterError` at ``after`` when it is none, or of the other order."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ascending = text.startswith("+")
        micros, event_id = text.lstrip("+").split(":", 1)
        moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=int(micros))
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise fail(("after",), f"{cursor!r} is not a cursor printed by a previous page") from None
    if not event_id:
        raise fail(("after",), f"{cursor!r} is not a cursor printed by a previous page")
    if ascending == descending:
        raise fail(("after",), f"{cursor!r} was printed by a page in the other order "
                   f"(ordering={'created_at' if ascending else '-created_at'})")
    return moment, event_id


def after_cursor(cursor: str, *, descending: bool = True) -> pl.Expr:
    """Rows strictly after the cursor's row in the order ``created_at, id`` (both descending by default,
    both ascending with ``descending=False``)."""
    moment, event_id = decode_cursor(cursor, descending=descending)
    if descending:
        return (pl.col("day") <= moment.date()) & (
            (pl.col("created_at") < moment) | ((pl.col("created_at") == moment) & (pl.col("id") < event_id)))
    return (pl.col("day") >= moment.date()) & (
        (pl.col("created_at") > moment) | ((pl.col("created_at") == moment) & (pl.col("id") > event_id)))
