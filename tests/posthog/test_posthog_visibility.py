"""PostHog's activity visibility rules (posthog/models/activity_logging/visibility_rules.py, tested in
posthog/test/activity_logging/test_activity_logging.py): rows PostHog hides from everyone but staff.
There is no staff here: organization admin keys and project keys are both non-staff."""

import pytest

from .phserver import differs, project

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


def _case(rule, as_):
    scope, activity, impersonated, hidden = rule
    if not hidden:
        return pytest.param(rule, as_, id=f"{_name(rule)}-{as_}")
    if impersonated:
        if as_ == "member":
            return pytest.param(rule, as_, id=f"{_name(rule)}-{as_}")
        reason = ("organization admin keys see impersonated logins/logouts; PostHog hides them from every "
                  "non-staff user, organization admins included")
    else:
        reason = f"{scope} {activity!r} rows are shown; PostHog hides them from non-staff users (visibility_rules.py)"
    return pytest.param(rule, as_, id=f"{_name(rule)}-{as_}", marks=differs(reason))


PROJECTS = {rule: project([{"scope": rule[0], "activity": rule[1], "item_id": "1", "was_impersonated": rule[2]}])
            for rule in RULES}


def _name(rule) -> str:
    scope, activity, impersonated, hidden = rule
    return f"{scope}-{activity.replace(' ', '_')}{'-impersonated' if impersonated else ''}"


@pytest.mark.parametrize("rule, as_", [_case(r, a) for r in RULES for a in ("member", "admin")])
def test_restricted_activity_is_hidden_from_non_staff(posthog, rule, as_):
    response = posthog.get(f"/api/projects/{PROJECTS[rule]}/advanced_activity_logs/", as_=as_)
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == (0 if rule[3] else 1)


@pytest.mark.parametrize("rule", [
    pytest.param(r, id=_name(r), marks=[] if r[2] else differs(
        f"{r[0]} {r[1]!r} rows are shown on activity_log/; PostHog hides them from non-staff users"))
    for r in [r for r in RULES if r[3]][:4]])
def test_restricted_activity_is_hidden_on_activity_log(posthog, rule):
    response = posthog.get(f"/api/projects/{PROJECTS[rule]}/activity_log/")
    assert response.status_code == 200, response.text
    assert response.json()["results"] == []
