"""Ask with a model (``ask.model``): a real HTTP server on 127.0.0.1 plays the OpenAI-compatible
endpoint; its proposals are validated by the filter model and the reader's users before they run, and
a bad or hostile proposal is refused with the reason."""

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers.servers import LOOPBACK, child_env, script
from transforms.ask import AskError, ask

import polars as pl


class Model:
    """A loopback chat-completions endpoint: answers with ``reply`` (a dict as the message content, or
    (status, body)), records each request."""

    def __init__(self):
        self.reply, self.requests = {}, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                if isinstance(outer.reply, tuple):
                    status, payload = outer.reply
                else:
                    status, payload = 200, json.dumps({"choices": [{"message": {
                        "role": "assistant", "content": json.dumps(outer.reply)}}]})
                data = payload.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def model():
    served = Model()
    yield served
    served.server.shutdown()
    served.server.server_close()


@pytest.fixture
def propose(model, monkeypatch):
    from pipelines.askmodel import model_proposer
    from pipelines.config import AskModelConfig

    monkeypatch.setenv("ASK_MODEL_KEY", "sk-loopback-test")
    return model_proposer(AskModelConfig.model_validate(
        {"url": model.url, "model": "tiny", "api_key": {"env": "ASK_MODEL_KEY"}, "timeout": 10}))


ORG_A_PROJECT_1 = (pl.col("organization_id") == "org-a") & (pl.col("team_id") == 1)


def test_the_model_proposes_and_the_proposal_runs(world, model, propose):
    model.reply = {"scopes": ["FeatureFlag"], "users": ["Alice"], "activities": ["updated"]}
    result = ask(world["lake"], "what did alice do to flags", where=ORG_A_PROJECT_1, propose=propose)
    assert result.answer.filter.users == ("alice@org-a.example",)
    assert {r["id"] for r in result.rows.iter_rows(named=True)} == {"a-recent", "a-week"} and result.total == 2
    assert [(c.param, c.value) for c in result.answer.chips] == [
        ("users", "alice@org-a.example"), ("scopes", "FeatureFlag"), ("activities", "updated")]
    sent = model.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-loopback-test"
    assert sent["body"]["model"] == "tiny" and sent["body"]["messages"][-1]["content"] == "what did alice do to flags"
    # Only the question and scope/activity names leave the server: no user, no row.
    text = json.dumps(sent["body"])
    assert "alice@org-a.example" not in text and "checkout-flow" not in text and "mallory" not in text


@pytest.mark.parametrize("reply, reason", [
    ({"was_impersonated": "maybe"}, "the model proposed a filter that is not valid: the model's filter: was_impersonated"),
    ({"scopes": {"a": 1}}, "not valid: the model's filter: scopes"),
    ({"start": "2024-02-01", "end": "2024-01-01"}, "is before start"),
    ({"team_ids": [3]}, "the model proposed fields a question may not set: team_ids"),
    ({"include_organization": True}, "may not set: include_organization"),
    ({"users": ["mallory@org-b.example"]}, "I do not know the user 'mallory@org-b.example'"),
    ({}, "the model proposed an empty filter"),
    ((500, "{}"), "answered HTTP 500"),
    ((200, "not json"), "is not a chat completion whose message is a JSON object"),
    ((200, json.dumps({"choices": [{"message": {"content": "[1, 2]"}}]})), "JSON that is not an object"),
])
def test_a_bad_proposal_is_refused_with_the_reason(world, model, propose, reply, reason):
    model.reply = reply
    with pytest.raises(AskError) as caught:
        ask(world["lake"], "flags", where=ORG_A_PROJECT_1, propose=propose)
    assert reason in str(caught.value)


def test_the_key_fixes_the_project_whatever_the_model_says(world, model, propose):
    model.reply = {"scopes": ["FeatureFlag"]}
    result = ask(world["lake"], "flags everywhere", where=ORG_A_PROJECT_1, fixed={"team_ids": [1]}, propose=propose)
    assert "b-secret" not in {r["id"] for r in result.rows.iter_rows(named=True)} and result.total == 2


def test_a_model_that_does_not_answer_is_named(world):
    from pipelines.askmodel import model_proposer
    from pipelines.config import AskModelConfig

    closed = ThreadingHTTPServer((LOOPBACK, 0), BaseHTTPRequestHandler)
    port = closed.server_address[1]
    closed.server_close()
    propose = model_proposer(AskModelConfig.model_validate({"url": f"http://{LOOPBACK}:{port}/v1", "model": "m"}))
    with pytest.raises(AskError, match=rf"the model at http://{LOOPBACK}:{port}/v1 did not answer \(ConnectError\)"):
        ask(world["lake"], "flags", where=ORG_A_PROJECT_1, propose=propose)


@pytest.mark.parametrize("section, reason", [
    ({"model": {"url": "ftp://x", "model": "m"}}, "must be an http(s) URL"),
    ({"model": {"url": "https://user:pw@x/v1", "model": "m"}}, "must not carry credentials"),
    ({"model": {"url": "https://x/v1", "model": ""}}, "must be the model's name"),
    ({"model": {"url": "https://x/v1", "model": "m", "timeout": 0}}, "between 0 and 300"),
    ({"model": {"url": "https://x/v1", "model": "m", "api_key": "sk-inline"}}, "must be {env: NAME}"),
    ({"model": {"model": "m"}}, "url"),
])
def test_the_ask_section_is_checked(tmp_path, section, reason):
    import yaml

    from pipelines.config import ConfigError, load_config

    path = tmp_path / "activitylog.yaml"
    path.write_text(yaml.safe_dump({"ask": section}))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert reason in str(caught.value) and "ask" in str(caught.value)


def test_the_command_uses_the_configured_model(world, model, tmp_path):
    model.reply = {"scopes": ["FeatureFlag"], "users": ["alice@org-a.example"]}
    config = tmp_path / "activitylog.yaml"
    config.write_text(f"ask:\n  model: {{url: '{model.url}', model: tiny, api_key: {{env: ASK_MODEL_KEY}}}}\n")
    env = child_env({"ACTIVITYLOG_LAKE": str(world["lake"].root), "ACTIVITYLOG_CONFIG": str(config),
                     "ASK_MODEL_KEY": "sk-cli"})
    run = subprocess.run([str(script("activitylog")), "ask", "alice's flags", "--json", "--team-id", "1"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["total"] == 2 and out["filter"]["users"] == ["alice@org-a.example"]
    assert model.requests[-1]["auth"] == "Bearer sk-cli"
    model.reply = {"users": ["nobody@example.com"]}
    refused = subprocess.run([str(script("activitylog")), "ask", "nobody's flags"], capture_output=True, text=True,
                             timeout=60, env=env)
    assert refused.returncode == 2 and "I do not know the user 'nobody@example.com'" in refused.stderr
    parser = subprocess.run([str(script("activitylog")), "ask", "alice's flags", "--no-model", "--json"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert parser.returncode == 0 and len(model.requests) == 2


def test_the_page_asks_the_configured_model_within_the_key(world, model, app_env, tmp_path):
    from tests.helpers.page import entry_ids, page_client, sign_in

    config = tmp_path / "activitylog.yaml"
    config.write_text(f"ask:\n  model: {{url: '{model.url}', model: tiny}}\n")
    app_env.setenv("ACTIVITYLOG_CONFIG", str(config))
    client = sign_in(page_client(world), world, "p1")
    model.reply = {"scopes": ["FeatureFlag"]}
    page = client.get("/ask", params={"q": "every flag of every organization"})
    assert page.status_code == 200, page.text
    assert entry_ids(page.text) == {"a-recent", "a-week"} and 'name="scopes" value="FeatureFlag"' in page.text
    model.reply = {"users": ["mallory@org-b.example"]}
    refused = client.get("/ask", params={"q": "mallory's flags"})
    assert refused.status_code == 400 and "I do not know the user" in refused.text and "b-secret" not in refused.text


def test_the_page_names_a_broken_ask_section(world, app_env, tmp_path):
    from tests.helpers.page import page_client, sign_in

    config = tmp_path / "activitylog.yaml"
    config.write_text("ask:\n  model: {url: 'ftp://x', model: tiny}\n")
    app_env.setenv("ACTIVITYLOG_CONFIG", str(config))
    client = sign_in(page_client(world), world, "p1")
    page = client.get("/ask", params={"q": "flags"})
    assert page.status_code == 503 and "the ask section of the configuration cannot be used" in page.text
    assert "must be an http(s) URL" in page.text
