"""Resources: where the lake and the landing area are, and how events are validated."""


from datetime import date, timedelta

import os

import dagster as dg
import polars as pl

from pipelines.settings import Settings
from transforms.changes import MaskRules
from transforms.lake import Lake
from transforms.reference import lake_reference_uris, load_references
from transforms.validate import ValidationSettings


class LakeResource(dg.ConfigurableResource):
    """The lake root (``ACTIVITYLOG_LAKE``: a local path or ``s3://bucket/prefix``)."""

    root: str

    def lake(self) -> Lake:
        return Lake.at(self.root)


class LandingResource(dg.ConfigurableResource):
    """The landing area and the acceptance rules for its events."""

    uri: str
    start_date: str
    default_team_id: int | None = None
    max_future_skew_hours: int = 24

    def validation(self) -> ValidationSettings:
        return ValidationSettings(
            start_date=date.fromisoformat(self.start_date),
            default_team_id=self.default_team_id,
            max_future_skew=timedelta(hours=self.max_future_skew_hours),
        )


def default_resources(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    settings = settings or Settings.from_env()
    return {
        "lake": LakeResource(root=settings.lake),
        "landing": LandingResource(
            uri=settings.landing,
            start_date=settings.validation.start_date.isoformat(),
            default_team_id=settings.validation.default_team_id,
            max_future_skew_hours=int(settings.validation.max_future_skew.total_seconds() // 3600),
        ),
        "config": PipelineConfigResource(path=os.environ.get("ACTIVITYLOG_CONFIG")),
    }


class PipelineConfigResource(dg.ConfigurableResource):
    """The configuration file (``ACTIVITYLOG_CONFIG``, default ./activitylog.yaml): masking, reference data."""

    path: str | None = None

    def load(self):
        from pipelines.config import load_config

        return load_config(self.path)

    def mask_rules(self) -> MaskRules:
        return MaskRules(entries=tuple(self.load().masking.fields))

    def reference_uris(self, lake: Lake) -> dict[str, str]:
        """Configured reference tables, else the ones found under ``<lake>/reference/``."""
        configured = self.load().reference.uris()
        return {**lake_reference_uris(lake.root), **configured}

    def references(self, lake: Lake) -> dict[str, pl.DataFrame]:
        return load_references(self.reference_uris(lake))
