-- activity_events + change summaries + reference data → activity_log (one row per event, never more:
-- reference tables are deduplicated on their keys before they get here, and every join is LEFT).
-- Registered frames: activity_events, change_summaries, users, projects, organizations.
SELECT
    e.*,
    CASE
        WHEN e.is_system THEN 'system'
        WHEN e.was_impersonated THEN 'impersonated'
        ELSE 'user'
    END AS actor_type,
    COALESCE(
        NULLIF(TRIM(CONCAT_WS(' ', u.first_name, u.last_name)), ''),
        NULLIF(TRIM(CONCAT_WS(' ', e.actor_first_name, e.actor_last_name)), ''),
        u.email,
        e.actor_email
    ) AS actor_name,
    u.role AS actor_role,
    COALESCE(e.detail_name, e.detail_short_id, e.item_id) AS resource_name,
    COALESCE(c.changed_fields, []) AS changed_fields,
    c.changes_text,
    p.name AS project_name,
    o.name AS organization_name
FROM activity_events e
LEFT JOIN change_summaries c ON e.id = c.id
LEFT JOIN users u ON e.actor_uuid = u.uuid
LEFT JOIN projects p ON e.team_id = p.team_id
LEFT JOIN organizations o ON COALESCE(e.organization_id, p.organization_id) = o.organization_id
ORDER BY e.created_at, e.id
