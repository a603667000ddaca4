"""Tamper evidence: a per-day SHA-256 digest chain over ``activity_raw``, like CloudTrail's digest files.

For each day: ``day_hash`` = SHA-256 over the day's events sorted by id, each contributing
``id TAB sha256(payload) LF`` (the payload is the verbatim line). The day's ``digest`` =
SHA-256 of ``day|version|events|day_hash|previous_digest``, where ``previous_digest`` is the latest
digest of the nearest earlier day when it was computed (64 zeros for the first). Optionally signed:
HMAC-SHA256 with ``ACTIVITYLOG_DIGEST_HMAC_KEY``, or Ed25519 with ``ACTIVITYLOG_DIGEST_ED25519_KEY``
(a PEM private key); verification then needs the same key (or, for Ed25519, the public key).

``activity_digests`` is append-only. A day that changes (late events, retention of some of its rows,
erasure) gets a new *version*, with a ``reason``; earlier versions stay, and the later days' links to
them stay valid. A day deleted by retention keeps its digest, in a new row marked ``expired``.

:func:`verify` recomputes every day from ``activity_raw`` and checks every digest row and link. It
names the first bad day and the kind of tampering: a row changed, removed or inserted; a day removed or
inserted; a digest altered, a link broken, a signature wrong.

The chain lives in :mod:`transforms.integrity.chain`, signing in :mod:`transforms.integrity.signing`,
verification in :mod:`transforms.integrity.verification` (its report in
:mod:`transforms.integrity.problems`), and verify's readers of damaged tables in
:mod:`transforms.integrity.deltalog` and :mod:`transforms.integrity.readers`.
"""

from __future__ import annotations

from transforms.integrity.chain import (  # noqa: F401  (the names callers import from transforms.integrity)
    ACTIVITY_DIGESTS,
    DIGEST_SCHEMA,
    GENESIS,
    chain_digest,
    day_hashes,
    digests,
    latest,
    update_digests,
)
from transforms.integrity.deltalog import _check_log, _filesystem, _guarded, _log_problem, table_on_storage  # noqa: F401
from transforms.integrity.problems import Problem, VerifyReport  # noqa: F401
from transforms.integrity.readers import _live_files, _read_days, _read_files  # noqa: F401
from transforms.integrity.signing import ED25519_ENV, HMAC_ENV, _sign, _signature_problem  # noqa: F401
from transforms.integrity.verification import verify  # noqa: F401
