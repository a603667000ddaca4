"""One event's leaf: its personal fields (JSON pointers) committed with salts, the rest hashed whole;
and checking an event, an erased event or one disclosed field against its leaf."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from transforms.commitments.canonical import CommitmentError, canonical

SALT_SIZE = 32
LEAF_VERSION = 1
#: The actor's fields, always committed when present and not null.
ACTOR_FIELDS = ("/user/id", "/user/uuid", "/user/email", "/user/first_name", "/user/last_name", "/ip_address")
EMAIL_PATTERN = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")


def commitment(salt: bytes, value: Any) -> bytes:
    """``SHA-256(salt ‖ JCS(value))``."""
    return hashlib.sha256(salt + canonical(value)).digest()


# ------------------------------------------------------------------------------------------- pointers

def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _tokens(pointer: str) -> list[str]:
    if not pointer.startswith("/"):
        raise CommitmentError(f"not a JSON pointer: {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


_MISSING = object()


def _get(doc: Any, pointer: str) -> Any:
    node = doc
    for token in _tokens(pointer):
        if isinstance(node, dict):
            if token not in node:
                return _MISSING
            node = node[token]
        elif isinstance(node, list):
            if not token.isdigit() or int(token) >= len(node):
                return _MISSING
            node = node[int(token)]
        else:
            return _MISSING
    return node


def _set_null(doc: dict, pointer: str, copied: set[int]) -> None:
    """Set the value at ``pointer`` to null; missing (or null) parent objects are created. Containers
    on the way are copied once (``copied`` holds the ids of those already copied)."""
    tokens = _tokens(pointer)
    node: Any = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            child = node.get(token)
            key: Any = token
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            key = int(token)
            child = node[key]
        else:
            raise CommitmentError(f"path {pointer} no longer exists in the event")
        if not isinstance(child, (dict, list)):
            if isinstance(node, list):
                raise CommitmentError(f"path {pointer} no longer exists in the event")
            child = {}
        elif id(child) not in copied:
            child = dict(child) if isinstance(child, dict) else list(child)
        copied.add(id(child))
        node[key] = child
        node = child
    last = tokens[-1]
    if isinstance(node, dict):
        node[last] = None
    elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = None
    else:
        raise CommitmentError(f"path {pointer} no longer exists in the event")


# ---------------------------------------------------------------------------------------- personal data

def personal_paths(event: Mapping[str, Any]) -> list[str]:
    """The JSON pointers of the event's personal data (see the module docs), sorted."""
    paths = [p for p in ACTOR_FIELDS if _get(event, p) not in (_MISSING, None)]
    user = event.get("user") if isinstance(event.get("user"), dict) else {}
    contained = [str(v) for v in (user.get("uuid"), user.get("email"), event.get("ip_address")) if v]
    contained_lower = [v.lower() for v in contained]
    names = {str(v) for v in (user.get("first_name"), user.get("last_name")) if v}

    def personal(text: str) -> bool:
        if text in names or EMAIL_PATTERN.search(text):
            return True
        lowered = text.lower()
        return any(v in lowered for v in contained_lower)

    def walk(node: Any, pointer: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{pointer}/{_escape(str(key))}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{pointer}/{i}")
        elif isinstance(node, str) and personal(node):
            paths.append(pointer)

    if "detail" in event:
        walk(event["detail"], "/detail")
    return sorted(set(paths))


def redact(event: Mapping[str, Any], paths: Iterable[str]) -> dict:
    """A copy of the event with every path in ``paths`` set to null (only the objects and arrays on
    those paths are copied; the event itself is left as it was)."""
    out = dict(event)
    copied: set[int] = {id(out)}
    for path in paths:
        _set_null(out, path, copied)
    return out


# ------------------------------------------------------------------------------------------------ leaves

@dataclass(frozen=True)
class Leaf:
    commitments: dict[str, bytes]  #: JSON pointer → commitment
    rest: bytes  #: SHA-256 of the redacted event's JCS

    def to_bytes(self) -> bytes:
        return canonical({"v": LEAF_VERSION, "commitments": {p: c.hex() for p, c in self.commitments.items()},
                          "rest": self.rest.hex()})

    @classmethod
    def from_bytes(cls, data: bytes) -> "Leaf":
        try:
            doc = json.loads(data)
            if doc.get("v") != LEAF_VERSION or set(doc) != {"v", "commitments", "rest"}:
                raise ValueError
            leaf = cls({p: bytes.fromhex(c) for p, c in doc["commitments"].items()}, bytes.fromhex(doc["rest"]))
        except (ValueError, TypeError, AttributeError):
            raise CommitmentError("not an event leaf") from None
        if leaf.to_bytes() != data:
            raise CommitmentError("leaf is not in canonical form")
        return leaf


def build_leaf(event: Mapping[str, Any], *, salts: Mapping[str, bytes] | None = None) -> tuple[bytes, dict[str, bytes]]:
    """The leaf bytes for ``event`` (a parsed JSON object) and the salts of its commitments (JSON
    pointer → 32 random bytes). ``salts`` may supply them (tests; re-deriving a known leaf)."""
    if not isinstance(event, Mapping):
        raise CommitmentError("an event is a JSON object")
    paths = personal_paths(event)
    used = {p: (salts[p] if salts is not None else os.urandom(SALT_SIZE)) for p in paths}
    commitments = {p: commitment(used[p], _get(event, p)) for p in paths}
    rest = hashlib.sha256(canonical(redact(event, paths))).digest()
    return Leaf(commitments, rest).to_bytes(), used


def _check_rest(event: Mapping[str, Any], leaf: Leaf) -> None:
    rest = hashlib.sha256(canonical(redact(event, leaf.commitments))).digest()
    if not hmac.compare_digest(rest, leaf.rest):
        raise CommitmentError("the event's non-personal content does not match its leaf")


def verify_event(event: Mapping[str, Any], leaf_bytes: bytes, salts: Mapping[str, bytes]) -> None:
    """Check a whole event (personal data included) against its leaf, given its salts. Raises
    :class:`CommitmentError` naming the first field that does not match."""
    leaf = Leaf.from_bytes(leaf_bytes)
    if set(salts) != set(leaf.commitments):
        raise CommitmentError("the salts do not belong to this leaf's committed fields")
    if set(personal_paths(event)) - set(leaf.commitments):
        raise CommitmentError("the event has personal data its leaf does not commit to")
    for path, expected in leaf.commitments.items():
        value = _get(event, path)
        if value is _MISSING or not hmac.compare_digest(commitment(salts[path], value), expected):
            raise CommitmentError(f"{path} does not match its commitment")
    _check_rest(event, leaf)


def verify_erased_event(event: Mapping[str, Any], leaf_bytes: bytes) -> None:
    """Check an event whose personal data was erased (values changed or removed at the committed paths,
    salts gone) against its leaf: everything but the committed fields must match."""
    _check_rest(event, Leaf.from_bytes(leaf_bytes))


def verify_field(path: str, value: Any, salt: bytes, leaf_bytes: bytes) -> None:
    """Check one disclosed personal value against the leaf's commitment for ``path``."""
    leaf = Leaf.from_bytes(leaf_bytes)
    expected = leaf.commitments.get(path)
    if expected is None or not hmac.compare_digest(commitment(salt, value), expected):
        raise CommitmentError(f"{path} does not match its commitment")
