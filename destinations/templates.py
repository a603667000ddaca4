"""Message templates: Jinja2 in a sandbox, one rendering per event.

A subscription may name its own template file; it renders the text of one event (Slack mrkdwn) from
the event's ``activity_log`` columns plus:

* ``changes`` — a list of ``{field, before, after}`` (JSON text, shortened; masked values read ``masked``),
* ``link`` — the destination's ``link_template`` filled in, or empty,
* ``subscription`` — the subscription's name.

An email destination has three templates (subject, plain text, HTML) rendering one message from a
batch: ``events`` (each event's context as above), ``count`` and ``subscription``. HTML templates
autoescape every value.

Templates run in Jinja2's ``SandboxedEnvironment`` (no attribute access to internals, no imports) with
``StrictUndefined``, so a misspelled variable is an error naming the template and the line, never a
silently empty message.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

DEFAULT_SLACK_TEMPLATE = """\
*{{ summary }}*
{% if changes %}{% for change in changes %}• `{{ change.field }}`: {{ change.before }} → {{ change.after }}
{% endfor %}{% endif %}\
_{{ actor_name or actor_email or ("System" if is_system else "Someone") }}{% if project_name %} · {{ project_name }}{% endif %}\
{% if organization_name %} · {{ organization_name }}{% endif %} · {{ created_at }}_\
{% if link %} · <{{ link }}|open {{ resource_name or item_id }}>{% endif %}"""


DEFAULT_EMAIL_SUBJECT = """\
{% if count == 1 %}{{ events[0].summary }}{% else %}{{ subscription }}: {{ count }} events{% endif %}"""

DEFAULT_EMAIL_TEXT = """\
{{ subscription }}: {{ count }} event{{ "s" if count != 1 }}
{% for event in events %}
{{ event.summary }}
{% for change in event.changes %}  - {{ change.field }}: {{ change.before }} -> {{ change.after }}
{% endfor %}  {{ event.actor_name or event.actor_email or ("System" if event.is_system else "Someone") }}\
{% if event.project_name %} · {{ event.project_name }}{% endif %} · {{ event.created_at }}
{% if event.link %}  {{ event.link }}
{% endif %}{% endfor %}"""

DEFAULT_EMAIL_HTML = """\
<!doctype html>
<html><body style="font-family: sans-serif">
<p><strong>{{ subscription }}</strong>: {{ count }} event{{ "s" if count != 1 }}</p>
{% for event in events %}<div style="margin: 12px 0">
<p><strong>{{ event.summary }}</strong></p>
{% if event.changes %}<ul>{% for change in event.changes %}<li><code>{{ change.field }}</code>: \
{{ change.before }} &rarr; {{ change.after }}</li>{% endfor %}</ul>{% endif %}
<p style="color: #666">{{ event.actor_name or event.actor_email or ("System" if event.is_system else "Someone") }}\
{% if event.project_name %} · {{ event.project_name }}{% endif %} · {{ event.created_at }}\
{% if event.link %} · <a href="{{ event.link }}">open {{ event.resource_name or event.item_id }}</a>{% endif %}</p>
</div>{% endfor %}
</body></html>"""


class TemplateProblem(ValueError):
    """A template cannot be compiled or rendered; the message names the template and the line."""


def _environment(html: bool = False) -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=html, keep_trailing_newline=False)


@lru_cache(maxsize=256)
def _compile(source: str, name: str, html: bool = False) -> jinja2.Template:
    try:
        return _environment(html).from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"template {name}: line {exc.lineno}: {exc.message}") from None


def compile_template_file(path: str, html: bool = False) -> jinja2.Template:
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateProblem(f"template {path}: cannot be read ({exc})") from None
    return _compile(source, path, html)


def load_template(path: str | None, default: str = DEFAULT_SLACK_TEMPLATE, *, html: bool = False,
                  default_name: str = "default") -> tuple[jinja2.Template, str]:
    """(compiled template, its name for messages): the file, or the default."""
    if path is None:
        return _compile(default, default_name, html), default_name
    return compile_template_file(path, html), path


def render(template: jinja2.Template, name: str, context: dict[str, Any]) -> str:
    try:
        return template.render(context).strip()
    except jinja2.TemplateError as exc:
        line = _template_line(exc)
        raise TemplateProblem(f"template {name}{line}: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a user's template may fail in any way; report it the same
        raise TemplateProblem(f"template {name}: {type(exc).__name__}: {exc}") from None


def _template_line(exc: Exception) -> str:
    traceback = exc.__traceback__
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return f": line {line}" if line else ""
