-- activity_events → activity_log: the table people query, export and notify from.
-- Run by Polars' SQLContext with the day's events registered as `activity_events`.
SELECT
    *,
    CASE
        WHEN is_system THEN 'system'
        WHEN was_impersonated THEN 'impersonated'
        ELSE 'user'
    END AS actor_type,
    COALESCE(detail_name, detail_short_id, item_id) AS resource_name
FROM activity_events
ORDER BY created_at, id
