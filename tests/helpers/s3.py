"""``moto_server`` as a subprocess on 127.0.0.1 with one bucket, and the AWS settings that point at it.

(In-process moto deadlocks delta-rs: docs/architecture.md "Tests".)
"""

from __future__ import annotations

import contextlib
import re
from typing import Iterator

import boto3

from tests.helpers.servers import LOOPBACK, child_env, free_port, script, start_server

BUCKET = "activitylog-test"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


class MotoServer:
    def __init__(self, server, endpoint: str, bucket: str = BUCKET) -> None:
        self.server = server
        self.endpoint = endpoint
        self.bucket = bucket

    @classmethod
    @contextlib.contextmanager
    def start(cls, bucket: str = BUCKET) -> Iterator["MotoServer"]:
        port = free_port()
        endpoint = f"http://{LOOPBACK}:{port}"
        server = start_server(
            "moto_server", [script("moto_server"), "-H", LOOPBACK, "-p", str(port)],
            url=f"{endpoint}/moto-api/", env=child_env({"PYTHONUNBUFFERED": "1"}), timeout=30,
        )
        try:
            handle = cls(server, endpoint, bucket)
            handle.client().create_bucket(Bucket=bucket)
            yield handle
        except BaseException:
            print(server.output())
            raise
        finally:
            server.stop()

    def env(self) -> dict[str, str]:
        """Every AWS setting a client needs for this server; shared config files are ignored, so no
        profile can name another endpoint."""
        return {**KEYS, "AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true",
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}

    def client(self):
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )

    def requests_logged(self) -> int:
        """HTTP requests moto has served so far (werkzeug logs one line per request)."""
        return len(re.findall(r'"(?:GET|PUT|POST|HEAD|DELETE) /', self.server.stderr()))
