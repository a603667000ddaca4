"""Browser tests' settings: Debian's chromium (``make browser`` installs it) and its flags, the viewports,
and ``own_origin``, which tells a request to the server under test from one that would leave the machine.
The ``browser`` fixture is in tests/conftest.py."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}


def own_origin(url: str, origin: str) -> bool:
    """Whether a request to ``url`` stays with ``origin`` (inline data and blobs never leave the page)."""
    if url.startswith("data:"):
        return True  # inline: no request leaves the page
    if url.startswith("blob:"):
        url = url[len("blob:"):]
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" == origin
