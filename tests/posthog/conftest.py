"""The session's served lake for the PostHog-compatibility suite (see phserver.py)."""

from .phserver import posthog  # noqa: F401  (the session fixture)
