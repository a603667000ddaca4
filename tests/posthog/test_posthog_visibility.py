"""PostHog's activity visibility rules (posthog/models/activity_logging/visibility_rules.py, tested in
posthog/test/activity_logging/test_activity_logging.py): rows PostHog hides from everyone but staff.
There is no staff here: organization admin keys and project keys are both non-staff."""

import pytest

from phserver import project

# (scope, activity, was_impersonated, hidden)
RULES = [
    ("User", "logged_in", True, True),
    ("User", "logged_out", True, True),
    ("User", "logged_in", False, False),
    ("User", "created", False, True),
    ("User", "updated", False, True),
    ("User", "deleted", False, True),
    ("User", "scim_provisioned", False, True),
    ("User", "scim_deprovisioned", False, True),
    ("Team", "email_sending_suspended", False, True),
    ("Team", "email_sending_unsuspended", False, True),
    ("Role", "scim_updated", False, True),
    ("InstanceSetting", "updated", False, True),
    ("AIGatewayCredit", "credit_added", False, True),
    ("Ticket", "commented", False, True),
    ("Ticket", "created task", False, True),
    ("Ticket", "created", False, False),
    ("conversations_ticket", "commented", False, True),
]
PROJECTS = {rule: project([{"scope": rule[0], "activity": rule[1], "item_id": "1", "was_impersonated": rule[2]}])
            for rule in RULES}


def _name(rule) -> str:
    scope, activity, impersonated, hidden = rule
    return f"{scope}-{activity.replace(' ', '_')}{'-impersonated' if impersonated else ''}"


@pytest.mark.parametrize("as_", ["member", "admin"])
@pytest.mark.parametrize("rule", RULES, ids=[_name(r) for r in RULES])
def test_restricted_activity_is_hidden_from_non_staff(posthog, rule, as_):
    response = posthog.get(f"/api/projects/{PROJECTS[rule]}/advanced_activity_logs/", as_=as_)
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == (0 if rule[3] else 1)


@pytest.mark.parametrize("rule", [r for r in RULES if r[3]][:4], ids=[_name(r) for r in RULES if r[3]][:4])
def test_restricted_activity_is_hidden_on_activity_log(posthog, rule):
    response = posthog.get(f"/api/projects/{PROJECTS[rule]}/activity_log/")
    assert response.status_code == 200, response.text
    assert response.json()["results"] == []
