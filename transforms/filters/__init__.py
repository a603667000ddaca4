"""The filter language: one model for the notebook API, the CLI, subscriptions, exports and streams.

Written the same way everywhere (YAML, JSON, Python keyword arguments); every key is optional::

    start: 2024-01-01                 # a date (its whole day) or an ISO-8601 timestamp; inclusive, UTC
    end: 2024-01-31T12:00:00Z
    users: [jane@example.com, 0188…]  # actor uuid or email (emails compare case-insensitively)
    scopes: [FeatureFlag]             # unknown scope names are allowed, with a warning
    activities: [updated]
    item_ids: ["123"]
    team_ids: [1]
    include_organization: true        # with team_ids: also the organization-level rows of their organizations
    was_impersonated: false
    is_system: false
    clients: [web, "api*"]            # ``*`` is a wildcard
    ip_addresses: ["203.0.113.*"]
    search: checkout                  # case-insensitive text over the detail and the summary
    detail_filters:
      "changes[].field": {operation: exact, value: active}
      "changes[].after": {operation: in, value: [true, 50]}
      "trigger.job_type": {operation: contains, value: export}

Lists match any element; different keys must all match. ``ActivityFilter.from_dict`` validates a mapping
and raises :class:`FilterError` naming the field before anything is read.

Detail paths walk the event's ``detail`` JSON: ``name``, ``trigger.job_type``, ``changes[].field``;
``[]`` means "any element" (no limit on the array's length) and ``[N]`` the N-th (from 0).
Operations (PostHog's, see the README's "Filter language"):

* ``exact`` matches a value equal to any of PostHog's type variants of the filter value
  (:func:`type_variants`): ``"42"`` matches ``"42"``, ``42`` and ``42.0``; ``"true"`` matches ``true``;
  ``"1"`` matches ``1`` and ``true``; ``true`` matches ``"true"``, ``"True"`` and ``"1"``. Variants
  compare as ``jsonb`` does: the JSON types apart, numbers by value.
* ``contains`` is a case-insensitive substring of the value's text form (a string is itself; anything
  else is its compact JSON; ``null`` has none).
* ``in`` takes a list and matches when ``exact`` matches for any element.

Paths follow PostHog's rules (:func:`check_path`): no ``__``, no lookup-named segment, at most three
``[]``. Each filter is ``{operation, value}``; the value must not be null.

Masked fields read ``"masked"`` here, as in ``activity_log``: a filter cannot reveal a secret.

The package, by concern: :mod:`.model` (:class:`ActivityFilter`, :class:`DetailFilter`), :mod:`.fields`
(each field's values: moments, lists, IP patterns, scope names), :mod:`.paths` (detail paths and what
a value matches), :mod:`.compile` (to one Polars expression), :mod:`.cursors` (pagination),
:mod:`.adapters` (from query parameters, JSON, CLI flags, an export's body) and :mod:`.errors`
(:class:`FilterError`, whose :class:`~transforms.problems.Problem` is the offending value's path).
"""

from .adapters import (ACCESS_FIELDS, QUERY_LISTS, QUERY_NAMES, detail_value, export_body, filter_from_flags,
                       filter_from_json, filter_from_query, posthog_end, query_bool, query_detail_filters, query_list)
from .cursors import after_cursor, decode_cursor, encode_cursor
from .errors import FilterError
from .fields import KNOWN_SCOPES, check_ip_filter, closest_scope, parse_moment
from .model import ALIASES, OPERATIONS, ActivityFilter, DetailFilter, detail_filters_from
from .paths import (ANY, MAX_ARRAY_LEVELS, MAX_DETAIL_FILTERS, MAX_PATH_LENGTH, RESERVED_SEGMENTS, check_path,
                    json_equal, parse_path, text_form, type_variants, values_at)

__all__ = [
    "ACCESS_FIELDS", "ALIASES", "ANY", "KNOWN_SCOPES", "MAX_ARRAY_LEVELS", "MAX_DETAIL_FILTERS", "MAX_PATH_LENGTH",
    "OPERATIONS", "QUERY_LISTS", "QUERY_NAMES", "RESERVED_SEGMENTS",
    "ActivityFilter", "DetailFilter", "FilterError",
    "after_cursor", "check_ip_filter", "check_path", "closest_scope", "decode_cursor", "detail_filters_from",
    "detail_value", "encode_cursor", "export_body", "filter_from_flags", "filter_from_json", "filter_from_query",
    "json_equal", "parse_moment", "parse_path", "posthog_end", "query_bool", "query_detail_filters", "query_list",
    "text_form", "type_variants", "values_at",
]
