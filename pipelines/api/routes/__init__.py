"""One router per resource: ``activity_log`` (PostHog's list), ``advanced_activity_logs`` (the filter
language, available filters) and exports. Every route depends on :func:`pipelines.api.deps.require_access`."""
