"""The sample's data tables: names, property keys, scopes with their weights, activities, the fields each
scope changes, system jobs, and the two small random-string helpers that draw from them."""

from __future__ import annotations

import random

_FLAG_PREFIX = ["new", "beta", "enable", "show", "use", "experimental", "holdout", "rollout"]
_FLAG_NOUN = [
    "checkout-flow", "onboarding", "pricing-page", "dark-mode", "search-v2", "billing-portal",
    "ai-assistant", "session-replay", "mobile-nav", "recommendations", "signup-form", "export-csv",
]
_NAMES = {
    "Insight": [
        "Weekly active users", "Signup funnel", "Checkout conversion", "Retention by cohort",
        "Pageviews by country", "Revenue per plan", "Feature adoption", "Churn risk", "DAU/MAU",
        "Time to first value", "Trial to paid", "Errors per release",
    ],
    "Dashboard": [
        "Product overview", "Growth", "Marketing KPIs", "Engineering health", "Sales pipeline",
        "Onboarding", "Web analytics", "Exec summary",
    ],
    "Experiment": [
        "Pricing page test", "Onboarding checklist", "CTA color", "Free trial length", "Search ranking",
        "Annual plan nudge",
    ],
    "Cohort": [
        "Power users", "Churned last 30d", "Enterprise accounts", "Beta testers", "Mobile-only users",
        "Signed up this week", "Trial users",
    ],
    "Notebook": ["Incident review", "Q3 planning", "Funnel deep dive", "Launch retro", "Weekly metrics"],
    "Survey": [
        "NPS", "Feature feedback", "Cancellation reasons", "Onboarding survey", "CSAT after support",
    ],
    "Action": ["Clicked signup", "Completed checkout", "Viewed pricing", "Invited teammate", "Uploaded file"],
    "HogFunction": ["Slack alerts", "Webhook to CRM", "HubSpot sync", "Customer.io", "Salesforce", "Zapier"],
    "Annotation": [
        "Deployed v2.3", "Marketing campaign launched", "Outage 14:00-14:30 UTC", "Pricing change",
        "Black Friday", "SDK upgrade",
    ],
    "Role": ["Engineering", "Marketing", "Read-only", "Support", "Data team", "Contractors"],
    "PersonalAPIKey": ["CI deploy", "Terraform", "Local dev", "Data export", "Zapier", "Backfill script"],
}
_EVENTS = ["$pageview", "$autocapture", "signed_up", "checkout_completed", "$identify", "plan_upgraded",
           "invite_sent", "file_uploaded", "$exception", "subscription_cancelled"]
_PERSON_PROPS = ["email", "plan", "$browser", "$os", "country", "company_size", "is_internal", "signup_date",
                 "$initial_referring_domain", "app_version"]
_OPERATORS = ["exact", "is_not", "icontains", "not_icontains", "regex", "gt", "lt", "is_set"]
_TAGS = ["growth", "billing", "mobile", "q3", "experiment", "deprecated", "core", "marketing"]
_TIMEZONES = ["UTC", "Europe/London", "America/New_York", "Asia/Tokyo", "Europe/Berlin", "America/Sao_Paulo"]
_SCOPES_API = ["feature_flag:read", "feature_flag:write", "insight:read", "query:read", "person:read",
               "dashboard:write", "activity_log:read", "batch_export:write"]
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

# (scope, weight) for project-level and organization-level human events.
_PROJECT_SCOPES = [
    ("FeatureFlag", 24), ("Insight", 20), ("Dashboard", 12), ("Cohort", 7), ("Notebook", 7),
    ("Experiment", 6), ("Survey", 5), ("Action", 5), ("HogFunction", 5), ("Team", 4), ("Annotation", 4),
]
_ORG_SCOPES = [("OrganizationMembership", 45), ("PersonalAPIKey", 25), ("Organization", 15), ("Role", 15)]
_ACTIVITIES = {
    "FeatureFlag": (("created", 12), ("updated", 78), ("deleted", 10)),
    "Insight": (("created", 25), ("updated", 62), ("deleted", 8), ("exported", 5)),
    "Dashboard": (("created", 15), ("updated", 70), ("deleted", 7), ("shared", 8)),
    "Experiment": (("created", 20), ("updated", 60), ("launched", 10), ("deleted", 10)),
    "Cohort": (("created", 20), ("updated", 70), ("deleted", 10)),
    "Notebook": (("created", 25), ("updated", 68), ("deleted", 7)),
    "Survey": (("created", 20), ("updated", 60), ("launched", 10), ("deleted", 10)),
    "Action": (("created", 25), ("updated", 65), ("deleted", 10)),
    "HogFunction": (("created", 20), ("updated", 70), ("deleted", 10)),
    "Team": (("updated", 1),),
    "Annotation": (("created", 50), ("updated", 35), ("deleted", 15)),
    "OrganizationMembership": (("invited", 35), ("joined", 25), ("removed", 10), ("updated", 30)),
    "PersonalAPIKey": (("created", 55), ("revoked", 30), ("updated", 15)),
    "Organization": (("updated", 1),),
    "Role": (("created", 25), ("updated", 60), ("deleted", 15)),
}
_ITEMS_PER_PROJECT = {
    "FeatureFlag": 60, "Insight": 120, "Dashboard": 25, "Cohort": 20, "Notebook": 30, "Experiment": 12,
    "Survey": 10, "Action": 20, "HogFunction": 10, "Annotation": 40,
    "PersonalAPIKey": 25, "Role": 6, "OrganizationMembership": 30,
}
# System jobs: job_type -> (scope, activity, fields changed)
_SYSTEM_JOBS = [
    ("scheduled_change", "FeatureFlag", "updated", 30),
    ("scheduled_export", "Insight", "exported", 15),
    ("scheduled_export", "Dashboard", "exported", 10),
    ("batch_import", "Cohort", "created", 8),
    ("cohort_recalculation", "Cohort", "updated", 17),
    ("batch_import", "Action", "created", 5),
    ("hog_function_auto_disable", "HogFunction", "updated", 8),
    ("experiment_auto_stop", "Experiment", "updated", 7),
]

_SHARE_ORG_LEVEL = 0.05
_SHARE_SYSTEM = 0.06
_SHARE_IMPERSONATED = 0.01

# Fields a human change touches, (field, weight) per scope.
_FIELDS = {
    "FeatureFlag": (("active", 30), ("rollout_percentage", 20), ("filters", 30), ("name", 8),
                    ("ensure_experience_continuity", 4), ("tags", 8)),
    "Insight": (("name", 20), ("description", 8), ("query", 40), ("dashboards", 12), ("tags", 8),
                ("favorited", 8), ("saved", 4)),
    "Dashboard": (("name", 15), ("description", 10), ("pinned", 15), ("tiles", 40), ("restriction_level", 10),
                  ("tags", 10)),
    "Experiment": (("name", 10), ("description", 10), ("start_date", 20), ("end_date", 20), ("parameters", 25),
                   ("archived", 15)),
    "Cohort": (("name", 20), ("filters", 60), ("is_static", 10), ("count", 10)),
    "Notebook": (("title", 30), ("content", 70)),
    "Survey": (("name", 10), ("questions", 35), ("start_date", 15), ("end_date", 10), ("appearance", 15),
               ("responses_limit", 10), ("iteration_count", 5)),
    "Action": (("name", 25), ("steps", 55), ("description", 10), ("post_to_slack", 10)),
    "HogFunction": (("enabled", 30), ("inputs", 25), ("encrypted_inputs", 20), ("hog", 10), ("name", 15)),
    "Team": (("session_recording_opt_in", 20), ("session_recording_sample_rate", 15), ("anonymize_ips", 8),
             ("capture_console_log_opt_in", 10), ("autocapture_opt_out", 10), ("timezone", 10),
             ("test_account_filters", 10), ("recording_domains", 7), ("data_attributes", 5),
             ("session_recording_minimum_duration_milliseconds", 5)),
    "Annotation": (("content", 70), ("date_marker", 30)),
    "OrganizationMembership": (("level", 1),),
    "PersonalAPIKey": (("label", 40), ("scopes", 40), ("scoped_teams", 20)),
    "Organization": (("name", 15), ("enforce_2fa", 25), ("members_can_invite", 20),
                     ("allow_publicly_shared_resources", 15), ("session_cookie_age", 15), ("logo_media_id", 10)),
    "Role": (("name", 30), ("feature_flags_access_level", 40), ("members", 30)),
}



def _short_id(rng: random.Random, n: int = 8) -> str:
    return "".join(rng.choice(_ALNUM) for _ in range(n))


def _iso(rng: random.Random, year: int = 2024) -> str:
    return (
        f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
        f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(10**6):06d}Z"
    )

