"""posthog/test/activity_logging/test_activity_logging.py :: TestActivityLogVisibilityManager, over HTTP, plus
the rules of posthog/models/activity_logging/visibility_rules.py that test leaves out. PostHog asks
activity_visibility_manager whether a row is restricted for a non-staff viewer; here a restricted row
must simply not be served. There is no staff here: organization admin keys and project keys are both
non-staff (the staff cases are skipped, see README)."""

import pytest

from tests.helpers.posthog import project

# test_is_restricted_for_external_destinations: (name, scope, activity, was_impersonated, expected_restricted)
CASES = [
    ("impersonated_login", "User", "logged_in", True, True),
    ("impersonated_logout", "User", "logged_out", True, True),
    ("normal_login", "User", "logged_in", False, False),
    ("normal_logout", "User", "logged_out", False, False),
    ("user_updated", "User", "updated", True, True),
    ("user_updated_not_impersonated", "User", "updated", False, True),
    ("user_created", "User", "created", False, True),
    ("user_changed_password", "User", "changed_password", False, False),
    ("instance_setting_updated", "InstanceSetting", "updated", False, True),
    ("ai_gateway_credit_added", "AIGatewayCredit", "credit_added", False, True),
    ("ticket_comment", "Ticket", "commented", False, True),
    ("ticket_task_comment", "Ticket", "created task", False, True),
    ("conversations_ticket_comment", "conversations_ticket", "commented", False, True),
    ("conversations_ticket_task_comment", "conversations_ticket", "created task", False, True),
    ("ticket_updated", "Ticket", "updated", False, False),
    ("feature_flag_created", "FeatureFlag", "created", False, False),
    ("feature_flag_updated", "FeatureFlag", "updated", True, False),
    ("insight_created", "Insight", "created", False, False),
    ("dashboard_deleted", "Dashboard", "deleted", False, False),
    ("experiment_launched", "Experiment", "launched", True, False),
]
# Rules of visibility_rules.py with no case in PostHog's test.
RULE_CASES = [
    ("user_deleted", "User", "deleted", False, True),
    ("user_scim_provisioned", "User", "scim_provisioned", False, True),
    ("user_scim_deprovisioned", "User", "scim_deprovisioned", False, True),
    ("team_email_sending_suspended", "Team", "email_sending_suspended", False, True),
    ("team_email_sending_unsuspended", "Team", "email_sending_unsuspended", False, True),
    ("role_scim_updated", "Role", "scim_updated", False, True),
]
PROJECTS = {case[0]: project([{"scope": case[1], "activity": case[2], "item_id": "1", "was_impersonated": case[3]}])
            for case in CASES + RULE_CASES}


def _params(cases):
    return [pytest.param(name, restricted, as_, id=f"{name}-{as_}")
            for name, _scope, _activity, _impersonated, restricted in cases for as_ in ("member", "admin")]


def _served(posthog, pid: int, as_: str = "member", endpoint: str = "advanced_activity_logs") -> list[dict]:
    response = posthog.get(f"/api/projects/{pid}/{endpoint}/", as_=as_)
    assert response.status_code == 200, response.text
    return response.json()["results"]


@pytest.mark.parametrize("name, expected_restricted, as_", _params(CASES))
def test_is_restricted_for_external_destinations(posthog, name, expected_restricted, as_):
    assert len(_served(posthog, PROJECTS[name], as_)) == (0 if expected_restricted else 1)


@pytest.mark.parametrize("name, expected_restricted, as_", _params(RULE_CASES))
def test_visibility_rule_hides_row_from_non_staff(posthog, name, expected_restricted, as_):
    assert len(_served(posthog, PROJECTS[name], as_)) == (0 if expected_restricted else 1)


MIX = project([{"scope": "User", "activity": "logged_in", "was_impersonated": True},
               {"scope": "User", "activity": "logged_out", "was_impersonated": True},
               {"scope": "User", "activity": "logged_in", "was_impersonated": False},
               {"scope": "User", "activity": "updated", "was_impersonated": False},
               {"scope": "FeatureFlag", "activity": "created", "was_impersonated": False}])


@pytest.mark.parametrize("endpoint", ["advanced_activity_logs", "activity_log"])
def test_queryset_excludes_restricted_logs_for_non_staff(posthog, endpoint):
    filtered = _served(posthog, MIX, endpoint=endpoint)

    assert len(filtered) == 2
    kinds = {(r["scope"], r["activity"], r["was_impersonated"]) for r in filtered}
    assert ("User", "logged_in", False) in kinds
    assert ("User", "logged_in", True) not in kinds
    assert not any(r["scope"] == "User" and r["activity"] == "updated" for r in filtered)
    assert ("FeatureFlag", "created", False) in kinds


AI = project([{"scope": "AIGatewayCredit", "activity": "credit_added"}, {"scope": "FeatureFlag", "activity": "created"}])


def test_queryset_excludes_ai_gateway_credit_for_non_staff(posthog):
    non_staff = _served(posthog, AI)
    assert not any(r["scope"] == "AIGatewayCredit" for r in non_staff)
    assert any(r["scope"] == "FeatureFlag" for r in non_staff)


TICKETS = project([{"scope": "conversations_ticket", "activity": "commented", "detail": {"changes": [
                        {"type": "Comment", "field": "content", "action": "created", "after": "plaintext"}]}},
                   {"scope": "Ticket", "activity": "commented"},
                   {"scope": "Ticket", "activity": "updated"}])


def test_queryset_excludes_ticket_comment_rows_for_non_staff(posthog):
    non_staff = _served(posthog, TICKETS)
    assert not any(r["scope"] == "conversations_ticket" and r["activity"] == "commented" for r in non_staff)
    assert not any(r["scope"] == "Ticket" and r["activity"] == "commented" for r in non_staff)
    assert any(r["scope"] == "Ticket" and r["activity"] == "updated" for r in non_staff)
