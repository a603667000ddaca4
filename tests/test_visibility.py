"""Visibility rules (transforms/visibility.py, the configuration's ``visibility:`` section) as pure logic:
the Polars condition against a plain-Python reading of the same rules, and every rejection path."""

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.config import ActivityLogConfig, ConfigError, load_config
from transforms.visibility import DEFAULT_RULES, VisibilityRule, hidden, rules_from, visible

SCOPES = ["User", "Team", "Role", "InstanceSetting", "AIGatewayCredit", "Ticket", "conversations_ticket",
          "FeatureFlag", "user", None]
ACTIVITIES = ["logged_in", "logged_out", "created", "updated", "deleted", "scim_provisioned", "scim_replaced",
              "scim_updated", "scim_deprovisioned", "email_sending_suspended", "email_sending_unsuspended",
              "credit_added", "commented", "created task", "changed_password", "Updated", None]


def frame(rows):
    return pl.DataFrame(rows, schema={"scope": pl.String, "activity": pl.String, "was_impersonated": pl.Boolean,
                                      "is_system": pl.Boolean}, orient="row")


def restricted(rules, scope, activity, was_impersonated, is_system):
    """The rules read in plain Python: a row is hidden when a rule's scope, an activity and every condition match."""
    values = {"was_impersonated": was_impersonated, "is_system": is_system}
    return any(scope == rule.scope and activity in rule.activities
               and all(values[column] is not None and values[column] == flag for column, flag in rule.when)
               for rule in rules)


row = st.tuples(st.sampled_from(SCOPES), st.sampled_from(ACTIVITIES), st.sampled_from([True, False, None]),
                st.sampled_from([True, False, None]))
rule = st.builds(lambda scope, activities, when: VisibilityRule(scope, tuple(activities), tuple(sorted(when.items()))),
                 st.sampled_from([s for s in SCOPES if s]), st.lists(st.sampled_from([a for a in ACTIVITIES if a]),
                                                                     min_size=1, max_size=4),
                 st.dictionaries(st.sampled_from(["was_impersonated", "is_system"]), st.booleans(), max_size=2))


@settings(max_examples=200, deadline=None)
@given(st.lists(row, max_size=40), st.one_of(st.just(DEFAULT_RULES), st.lists(rule, max_size=5).map(tuple)))
def test_visible_is_exactly_the_rows_no_rule_matches(rows, rules):
    shown = frame(rows).with_columns(visible(rules).alias("shown"), hidden(rules).alias("hid"))
    assert shown["shown"].null_count() == 0 and shown["hid"].null_count() == 0  # never null: nothing slips
    assert shown["shown"].to_list() == [not restricted(rules, *r) for r in rows]
    assert (shown["shown"] != shown["hid"]).all()


@pytest.mark.parametrize("scope, activity, impersonated, expected", [
    ("User", "logged_in", True, False), ("User", "logged_out", True, False), ("User", "logged_in", False, True),
    ("User", "logged_in", None, True), ("User", "updated", False, False), ("User", "created", None, False),
    ("User", "deleted", False, False), ("User", "changed_password", False, True),
    ("User", "scim_replaced", False, False), ("Role", "scim_updated", False, False), ("Role", "updated", False, True),
    ("Team", "email_sending_unsuspended", False, False), ("Team", "updated", False, True),
    ("InstanceSetting", "updated", False, False), ("AIGatewayCredit", "credit_added", False, False),
    ("Ticket", "commented", False, False), ("Ticket", "created task", False, False), ("Ticket", "updated", False, True),
    ("conversations_ticket", "commented", False, False), ("FeatureFlag", "updated", True, True),
    ("user", "updated", False, True), ("User", "Updated", False, True), (None, "updated", False, True),
    ("User", None, True, True),
])
def test_default_rules_are_posthogs(scope, activity, impersonated, expected):
    shown = frame([(scope, activity, impersonated, False)]).select(visible(DEFAULT_RULES)).item()
    assert shown is expected


def test_no_rules_hide_nothing():
    assert frame([("User", "updated", True, True)]).select(visible(())).item() is True


def test_rules_round_trip_and_rejections():
    assert rules_from([r.to_dict() for r in DEFAULT_RULES]) == DEFAULT_RULES
    for data, reason in [
        ([{"scope": "User"}], "[0]: activities must be a list and when an object"),
        ([{"scope": "User", "activities": []}], "[0].activities: must be a non-empty list of non-empty strings"),
        ([{"scope": "", "activities": ["x"]}], "[0].scope: must be a non-empty string"),
        ([{"scope": "User", "activities": ["x"], "when": {"team_id": 1}}],
         "[0].when: 'team_id' is not one of was_impersonated, is_system"),
        ([{"scope": "User", "activities": ["x"], "when": {"is_system": "yes"}}],
         "[0].when.is_system: must be true or false"),
        ([{"scope": "User", "activities": ["x"], "extra": 1}], "[0]: must be {scope, activities, when}"),
        (["User"], "[0]: must be {scope, activities, when}"),
    ]:
        with pytest.raises(ValueError) as info:
            rules_from(data)
        assert str(info.value) == reason


# -- the configuration file --------------------------------------------------------------------------------

def load(tmp_path, text):
    path = tmp_path / "activitylog.yaml"
    path.write_text(text)
    return load_config(path)


def load_error(tmp_path, text) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return str(info.value).split(": ", 1)[1]


def test_default_is_posthogs_rules(tmp_path):
    assert ActivityLogConfig().visibility.effective() == DEFAULT_RULES
    assert load(tmp_path, "visibility:\n").visibility.effective() == DEFAULT_RULES


def test_add_appends_and_rules_replace(tmp_path):
    added = load(tmp_path, "visibility:\n  add:\n    - {scope: Integration, activities: [updated], "
                           "when: {is_system: true}}\n").visibility.effective()
    assert added == DEFAULT_RULES + (VisibilityRule("Integration", ("updated",), (("is_system", True),)),)
    replaced = load(tmp_path, "visibility:\n  rules:\n    - {scope: ' User ', activities: [logged_in], "
                              "when: {was_impersonated: true}}\n").visibility.effective()
    assert replaced == (VisibilityRule("User", ("logged_in",), (("was_impersonated", True),)),)
    assert load(tmp_path, "visibility: {rules: []}\n").visibility.effective() == ()


@pytest.mark.parametrize("text, reason", [
    ("visibility: [User]\n", "visibility: must be a mapping, not a list"),
    ("visibility: {hide: []}\n", "visibility.hide: unknown key"),
    ("visibility: {rules: User}\n", "visibility.rules: must be a list, not a string"),
    ("visibility: {add: [{activities: [updated]}]}\n", "visibility.add[0].scope: is required"),
    ("visibility: {add: [{scope: User}]}\n", "visibility.add[0].activities: is required"),
    ("visibility: {add: [{scope: '  ', activities: [updated]}]}\n",
     "visibility.add[0].scope: must be a non-empty string"),
    ("visibility: {add: [{scope: 3, activities: [updated]}]}\n",
     "visibility.add[0].scope: must be a non-empty string, not a number"),
    ("visibility: {add: [{scope: User, activities: []}]}\n",
     "visibility.add[0].activities: must be a non-empty list of activities, not a list"),
    ("visibility: {add: [{scope: User, activities: updated}]}\n",
     "visibility.add[0].activities: must be a non-empty list of activities, not a string"),
    ("visibility: {add: [{scope: User, activities: [updated, '']}]}\n",
     "visibility.add[0].activities: each activity must be a non-empty string"),
    ("visibility: {add: [{scope: User, activities: [updated], when: {team_id: 1}}]}\n",
     "visibility.add[0].when: 'team_id' is not one of was_impersonated, is_system"),
    ("visibility: {add: [{scope: User, activities: [updated], when: {is_system: 'yes'}}]}\n",
     "visibility.add[0].when: is_system: must be true or false, not a string"),
    ("visibility: {add: [{scope: User, activities: [updated], when: [is_system]}]}\n",
     "visibility.add[0].when: must be a mapping of was_impersonated, is_system to true/false, not a list"),
    ("visibility: {rules: [{scope: User, activities: [updated], colour: red}]}\n",
     "visibility.rules[0].colour: unknown key"),
])
def test_rejections_name_the_field_and_reason(tmp_path, text, reason):
    assert load_error(tmp_path, text).startswith(reason)


def test_the_section_alone(tmp_path, monkeypatch):
    from pipelines.config import VisibilityConfig
    from pipelines.config.loader import load_section

    monkeypatch.chdir(tmp_path)  # no ./activitylog.yaml: the defaults
    monkeypatch.delenv("ACTIVITYLOG_CONFIG", raising=False)
    assert load_section("visibility", VisibilityConfig).effective() == DEFAULT_RULES
    path = tmp_path / "c.yaml"
    for text, rules in [("", DEFAULT_RULES), ("visibility:\n", DEFAULT_RULES), ("retention: {default: 7d}\n", DEFAULT_RULES),
                        ("visibility: {rules: []}\nnotifications: {destinations: {x: {type: nope}}}\n", ())]:
        path.write_text(text)
        assert load_section("visibility", VisibilityConfig, path).effective() == rules, text
    for text, message in [("[1]\n", f"{path}: must be a mapping of sections"),
                          ("visibility: [1]\n", f"{path}: visibility: must be a mapping, not a list"),
                          ("visibility: {add: [{scope: A}]}\n", f"{path}: visibility.add[0].activities: is required"),
                          ("visibility: {add: [\n", f"{path}: invalid YAML at line")]:
        path.write_text(text)
        with pytest.raises(ConfigError) as info:
            load_section("visibility", VisibilityConfig, path)
        assert str(info.value).startswith(message), str(info.value)
    with pytest.raises(ConfigError) as info:
        load_section("visibility", VisibilityConfig, tmp_path / "missing.yaml")
    assert str(info.value) == f"config file {tmp_path / 'missing.yaml'} does not exist"
    monkeypatch.setenv("ACTIVITYLOG_CONFIG", str(tmp_path / "gone.yaml"))
    with pytest.raises(ConfigError) as info:
        load_section("visibility", VisibilityConfig)
    assert str(info.value) == f"ACTIVITYLOG_CONFIG={tmp_path / 'gone.yaml'} does not exist"
