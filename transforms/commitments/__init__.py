"""Leaves that commit to an event and survive the erasure of its personal data.

A leaf does not hash the event's personal data directly. Each personal field gets a salted commitment
``SHA-256(salt ‖ JCS(value))`` with a fresh random 32-byte salt (per field, per event); the rest of the
event is hashed as a whole. Erasure deletes the plaintext and the salts, never the leaf: what is left
(commitments without salts) says nothing about the values, yet the rest of the event still matches the
leaf, and every tree head and proof that covered the leaf stays valid.

Personal fields (JSON pointers, RFC 6901): ``/user/id``, ``/user/uuid``, ``/user/email``,
``/user/first_name``, ``/user/last_name``, ``/ip_address`` when present and not null, and every string
inside ``/detail`` that holds an email address (anyone's: an invite, a membership change) or contains
the actor's uuid, email or IP address, or equals their first or last name. A string in ``detail`` that
mentions a value is committed as a whole.

The *redacted* event is the event with every committed path set to ``null`` (parents created as
objects where an erasure removed them). The leaf is the RFC 8785 (JCS) canonical form of::

    {"v": 1, "commitments": {pointer: hex commitment, ...}, "rest": hex SHA-256(JCS(redacted event))}

so it names the committed paths; an erased event is checked by redacting the same paths, whatever
values (or absence of values) erasure left there.

Salts are kept in ``merkle_salts`` (``event_id``, ``day``, ``path``, ``salt``), apart from the leaves,
so erasure and retention delete them by event id or day.

Canonical JSON is RFC 8785 via the ``rfc8785`` package. JSON numbers must be what JCS can represent
(IEEE 754 doubles; integers beyond 2^53 are refused), as the RFC requires.

Canonical JSON lives in :mod:`transforms.commitments.canonical`, one event's leaf and its checks in
:mod:`transforms.commitments.leaves`, leaves in bulk in :mod:`transforms.commitments.bulk`, the salts'
table in :mod:`transforms.commitments.salts`.
"""

from __future__ import annotations

from transforms.commitments.bulk import (  # noqa: F401  (the names callers import from transforms.commitments)
    _fast_leaf,
    _quick_paths,
    _salts_for,
    _SaltSource,
    build_leaves,
    verbatim_leaf,
)
from transforms.commitments.canonical import (  # noqa: F401
    CommitmentError,
    _NotRepresentable,
    _plain,
    canonical,
    es_number,
    fast_canonical,
    jcs_numbers,
    number_only_texts,
    plain_texts,
)
from transforms.commitments.leaves import (  # noqa: F401
    ACTOR_FIELDS,
    EMAIL_PATTERN,
    LEAF_VERSION,
    SALT_SIZE,
    Leaf,
    _get,
    _set_null,
    build_leaf,
    commitment,
    personal_paths,
    redact,
    verify_erased_event,
    verify_event,
    verify_field,
)
from transforms.commitments.salts import (  # noqa: F401
    MERKLE_SALTS,
    SALTS_SCHEMA,
    delete_salts,
    read_salts,
    salts_frame,
    write_salts,
)
