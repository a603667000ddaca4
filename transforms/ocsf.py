"""OCSF 1.5.0 records of ``activity_log`` rows (``schema=ocsf`` on the read API and on SIEM streams).

The mapping is PostHog's (its advanced activity-log OCSF serializer), so a SIEM sees the same record
from either product:

* class by activity: ``logged_in``/``logged_out``/``share_login_*`` are *Authentication* (3002),
  ``scim_*`` are *Account Change* (3001), everything else is *Entity Management* (3004); all in
  category 3, *Identity & Access Management*. ``type_uid`` is ``class_uid * 100 + activity_id``.
* ``activity_id`` from the mapped activities (create 1, update 3, delete 4, enable 8, disable 9…);
  an activity without a mapping is ``99`` (*Other*) with the source activity as ``activity_name``
  (OCSF's mechanism for an unmapped activity), and ``activity_name`` is absent otherwise.
* ``status_id`` 2 (*Failure*) for rejected writes and failed exports, 1 (*Success*) for the rest.
* ``entity`` ``{type: scope, uid: item_id, name: detail.name}`` (or the reference data's name of the
  resource when the detail has none); the actor's ``user`` and the
  ``src_endpoint`` IP when known; ``unmapped`` holds the activity, the changed field names and the
  tenant.
* **Values of changed fields are left out unless asked for** (``include_values``): ``detail`` is a
  free-form diff that can carry whole documents. With it, ``entity.data`` maps each changed field to
  its ``before`` and ``entity_result.data`` to its ``after``, each value the stored JSON text exactly.

Beyond PostHog's record (extensions a SIEM ignores when it does not know them): ``time`` is OCSF's
``timestamp_t`` (milliseconds since the epoch) with ``time_dt`` as the RFC 3339 text, the ``class_name``,
``category_name``, ``severity``, ``status`` and ``message`` (the summary sentence) captions,
``actor.invoked_by`` for impersonated actions, and the project and organization names.

Streams can also choose ``ocsf_api_activity``: OCSF 1.1 *API Activity* (class 6003), the schema streams
used before this mapping, with the stored ``detail`` under ``unmapped`` (:func:`api_activity_record`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import msgspec

from transforms import jsontext

VERSION = "1.5.0"

ACCOUNT_CHANGE, AUTHENTICATION, ENTITY_MANAGEMENT = 3001, 3002, 3004
CLASS_NAMES = {ACCOUNT_CHANGE: "Account Change", AUTHENTICATION: "Authentication",
               ENTITY_MANAGEMENT: "Entity Management"}
CATEGORY_IAM = 3
OTHER = 99
SUCCESS, FAILURE = 1, 2

AUTHENTICATION_ACTIVITIES = {"logged_in": 1, "logged_out": 2, "share_login_success": 1, "share_login_failed": 1}
ACCOUNT_CHANGE_ACTIVITIES = {"scim_provisioned": 1, "scim_updated": 3, "scim_replaced": 3, "scim_deprovisioned": 4}
ENTITY_MANAGEMENT_ACTIVITIES = {
    "created": 1, "create_property": 1, "updated": 3, "changed": 3, "config_updated": 3, "update_property": 3,
    "upsert_properties": 3, "deleted": 4, "bulk_deleted": 4, "delete_property": 4, "enabled": 8,
    "materialization_enabled": 8, "disabled": 9, "materialization_disabled": 9,
}
#: Attempts, not completed changes.
FAILURE_ACTIVITIES = frozenset({"save_rejected_conflict", "save_rejected_stale", "export_fail"})
ACTIVITY_NAMES = {1: "Create", 2: "Read", 3: "Update", 4: "Delete", 8: "Enable", 9: "Disable"}


def classify(activity: str) -> tuple[int, int]:
    """``(class_uid, activity_id)`` of a source activity."""
    if activity in AUTHENTICATION_ACTIVITIES:
        return AUTHENTICATION, AUTHENTICATION_ACTIVITIES[activity]
    if activity in ACCOUNT_CHANGE_ACTIVITIES:
        return ACCOUNT_CHANGE, ACCOUNT_CHANGE_ACTIVITIES[activity]
    return ENTITY_MANAGEMENT, ENTITY_MANAGEMENT_ACTIVITIES.get(activity, OTHER)


_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw])
_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_NULL = msgspec.Raw(b"null")


def changed_values(detail: str | None) -> tuple[dict[str, msgspec.Raw], dict[str, msgspec.Raw]]:
    """``(before, after)`` by field of the ``changes`` of a stored ``detail`` text, each value its exact
    JSON text (unpaired surrogate escapes included; a missing one is ``null``). Elements that are not
    objects or have no string ``field`` are skipped, as is a ``detail`` that is not an object or has no
    list of changes, and a field whose name holds an unpaired surrogate (it cannot be a JSON key of a
    UTF-8 document)."""
    before: dict[str, msgspec.Raw] = {}
    after: dict[str, msgspec.Raw] = {}
    if not detail:
        return before, after
    try:
        prepared, key = jsontext.prepare(detail)
        changes = _LIST.decode(_OBJECT.decode(prepared).get("changes", _NULL))
    except (jsontext.JSONProblem, msgspec.DecodeError, msgspec.ValidationError):
        return before, after

    def exact(raw: msgspec.Raw) -> msgspec.Raw:
        return msgspec.Raw(jsontext.restore(bytes(raw).decode(), key).encode()) if key else raw

    for element in changes:
        try:
            change = _OBJECT.decode(element)
            field = msgspec.json.decode(change.get("field", _NULL))
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if isinstance(field, str) and field and not jsontext.has_surrogate(field, key):
            before[field] = exact(change.get("before", _NULL))
            after[field] = exact(change.get("after", _NULL))
    return before, after


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if moment else None


def _present(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if v is not None}


def ocsf_record(row: dict[str, Any], *, include_values: bool = False) -> dict[str, Any]:
    """The OCSF record of an enriched ``activity_log`` row (see the module's description)."""
    activity = row["activity"]
    class_uid, activity_id = classify(activity)
    created = row.get("created_at")
    failed = activity in FAILURE_ACTIVITIES
    entity = {"type": row["scope"], "uid": row.get("item_id"), "name": row.get("detail_name") or row.get("resource_name")}
    record: dict[str, Any] = {
        "metadata": {"version": VERSION, "uid": row["id"], "original_time": _iso(created),
                     "product": {"name": "activitylog", "vendor_name": "PostHog activity log"}},
        "time": int(created.timestamp() * 1000) if created else None, "time_dt": _iso(created),
        "class_uid": class_uid, "class_name": CLASS_NAMES[class_uid],
        "category_uid": CATEGORY_IAM, "category_name": "Identity & Access Management",
        "type_uid": class_uid * 100 + activity_id, "activity_id": activity_id,
        "severity_id": 1, "severity": "Informational",
        "status_id": FAILURE if failed else SUCCESS, "status": "Failure" if failed else "Success",
        "message": row.get("summary"),
        "entity": entity,
        "unmapped": {"activity": activity, "changed_fields": list(row.get("changed_fields") or []),
                     "team_id": row.get("team_id"), "organization_id": row.get("organization_id"),
                     "project_name": row.get("project_name"), "organization_name": row.get("organization_name"),
                     "was_impersonated": row.get("was_impersonated"), "is_system": row.get("is_system"),
                     "client": row.get("client"), "level": row.get("level")},
    }
    if activity_id == OTHER:
        record["activity_name"] = activity
    if row.get("actor_uuid") is not None or row.get("actor_email") is not None:
        record["actor"] = {"user": _present({"uid": row.get("actor_uuid"), "email_addr": row.get("actor_email"),
                                             "name": row.get("actor_name")}),
                           **({"invoked_by": "impersonation"} if row.get("was_impersonated") else {})}
    if row.get("ip_address"):
        record["src_endpoint"] = {"ip": row["ip_address"]}
    if include_values:
        before, after = changed_values(row.get("detail"))
        if before:
            entity["data"] = before
            record["entity_result"] = {"type": row["scope"], "uid": row.get("item_id"), "data": after}
    return record


# ----------------------------------------------------------------------------------------------
# OCSF 1.1 API Activity (class 6003): the earlier stream schema, kept as ``ocsf_api_activity``
# ----------------------------------------------------------------------------------------------

API_ACTIVITY_VERSION = "1.1.0"
API_ACTIVITIES = {"created": (1, "Create"), "exported": (2, "Read"), "viewed": (2, "Read"), "updated": (3, "Update"),
                  "changed": (3, "Update"), "deleted": (4, "Delete"), "revoked": (4, "Delete")}


def api_activity_record(row: dict[str, Any]) -> dict[str, Any]:
    """OCSF 1.1 *API Activity* (class_uid 6003): create 1, read 2, update 3, delete 4, other 99, with the
    stored ``detail`` under ``unmapped`` (a stream that chose this schema receives the values)."""
    activity_id, activity_name = API_ACTIVITIES.get(row["activity"], (99, "Other"))
    created = row.get("created_at")
    user = {"uid": row.get("actor_uuid"), "email_addr": row.get("actor_email"), "name": row.get("actor_name"),
            "type": "System" if row.get("is_system") else "User"}
    return {
        "class_uid": 6003, "class_name": "API Activity", "category_uid": 6, "category_name": "Application Activity",
        "activity_id": activity_id, "activity_name": activity_name, "type_uid": 600300 + activity_id,
        "severity_id": 1, "severity": "Informational", "status_id": 1, "status": "Success",
        "time": int(created.timestamp() * 1000) if created else None,
        "message": row.get("summary"),
        "actor": {"user": _present(user), **({"invoked_by": "impersonation"} if row.get("was_impersonated") else {})},
        "api": {"operation": f"{row['scope']}.{row['activity']}", "service": {"name": "PostHog"}},
        "src_endpoint": _present({"ip": row.get("ip_address")}),
        "resources": [_present({"uid": row.get("item_id"), "type": row["scope"], "name": row.get("resource_name")})],
        "metadata": {"version": API_ACTIVITY_VERSION, "uid": row["id"],
                     "product": {"name": "activitylog", "vendor_name": "PostHog activity log"},
                     "original_time": _iso(created)},
        "unmapped": {"detail": jsontext.embed(row.get("detail")), "organization_id": row.get("organization_id"),
                     "project_id": row.get("team_id"), "project_name": row.get("project_name"),
                     "organization_name": row.get("organization_name"), "client": row.get("client"),
                     "level": row.get("level"), "changed_fields": row.get("changed_fields"),
                     "was_impersonated": row.get("was_impersonated"), "is_system": row.get("is_system")},
    }
