"""``serve``: PostHog's activity-log API over the lake (read-only, scoped keys). No Dagster."""

from __future__ import annotations

import argparse
import os
import sys

from pipelines.cli.errors import EXIT_OK, UsageError, command
from pipelines.cli.options import settings as load_settings


def register(commands) -> None:
    serve = command(commands, "serve", "serve PostHog's activity-log API over the lake (read-only, scoped keys)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1,
                       help="server processes (default 1; rate limits and page caches are per process)")
    serve.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from pipelines.api import PUBLIC_URL_ENV, create_app

    settings = load_settings()
    if args.workers < 1:
        raise UsageError("--workers must be 1 or more")
    from pipelines.api.app import visibility_rules
    from pipelines.config import AuditConfig, ConfigError
    from pipelines.config.loader import load_section

    try:  # the sections serve reads (visibility, audit): a bad one is exit 2, before anything listens
        visibility_rules()
        load_section("audit", AuditConfig)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    # Links in responses (next pages, downloads) start with ACTIVITYLOG_PUBLIC_URL, else with the address
    # listened on when it is one address (never the request's Host header); with a wildcard host
    # (0.0.0.0, ::) and no public URL they are relative.
    public_url = os.environ.get(PUBLIC_URL_ENV) or None
    if public_url is None and args.host not in ("", "0.0.0.0", "::"):
        public_url = f"http://{f'[{args.host}]' if ':' in args.host else args.host}:{args.port}"
    print(f"Serving {settings.lake} on http://{args.host}:{args.port} (OpenAPI: /docs, /openapi.json)", file=sys.stderr)
    if args.workers == 1:
        uvicorn.run(create_app(settings.lake, public_url=public_url), host=args.host, port=args.port,
                    log_level="info")
    else:  # each worker process builds its app from the environment
        os.environ["ACTIVITYLOG_LAKE"] = settings.lake
        if public_url:
            os.environ[PUBLIC_URL_ENV] = public_url
        uvicorn.run("pipelines.api:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                    log_level="info")
    return EXIT_OK
