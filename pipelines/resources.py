"""The resources the definitions bind: the lake, the landing area and the configuration file."""

from __future__ import annotations

import os

import dagster as dg

from assets.resources import ConfigResource, LakeResource, LandingResource
from transforms.settings import Settings


class PipelineConfigResource(ConfigResource):
    """The configuration file, parsed by :func:`pipelines.config.load_config` at every use (an edit
    takes effect at the next run)."""

    def load(self):
        from pipelines.config import load_config

        return load_config(self.path)


def default_resources(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    settings = settings or Settings.from_env()
    return {
        "lake": LakeResource(root=settings.lake),
        "landing": LandingResource.from_settings(settings),
        "config": PipelineConfigResource(path=os.environ.get("ACTIVITYLOG_CONFIG")),
    }
