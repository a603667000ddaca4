"""The erasure tests (tests/test_erasure_*.py): text with its JSON and HTML escapes read, where a form of the
erased user could hide."""

from __future__ import annotations

import html
import re


def unescaped(text: str) -> str:
    """``text`` with its ``\\uXXXX`` and ``\\/`` JSON escapes and its HTML entities read."""
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    return html.unescape(text.replace("\\/", "/"))
