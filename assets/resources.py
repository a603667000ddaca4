"""Resources the assets and jobs use: where the lake and the landing area are, how events are
validated, and what the configuration file says about masking and reference data.

The configuration file itself is parsed by the entry points (``pipelines/resources.py`` subclasses
:class:`ConfigResource` with the loader); this layer only uses what it yields.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import dagster as dg
import polars as pl

from transforms.changes import MaskRules
from transforms.lake import Lake
from transforms.reference import lake_reference_uris, load_references
from transforms.settings import Settings
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
    max_future_skew_seconds: float = 86400.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "LandingResource":
        validation = settings.validation
        return cls(uri=settings.landing, start_date=validation.start_date.isoformat(),
                   default_team_id=validation.default_team_id,
                   max_future_skew_seconds=validation.max_future_skew.total_seconds())

    def validation(self) -> ValidationSettings:
        return ValidationSettings(
            start_date=date.fromisoformat(self.start_date),
            default_team_id=self.default_team_id,
            max_future_skew=timedelta(seconds=self.max_future_skew_seconds),
        )


class ConfigResource(dg.ConfigurableResource):
    """The configuration file (``ACTIVITYLOG_CONFIG``, default ./activitylog.yaml): masking, reference
    data, and for the jobs above, subscriptions and streams. :meth:`load` is the entry points' parser."""

    path: str | None = None

    def load(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} cannot read a configuration file")

    def mask_rules(self) -> MaskRules:
        return MaskRules(entries=tuple(self.load().masking.fields))

    def reference_uris(self, lake: Lake) -> dict[str, str]:
        """Configured reference tables, else the ones found under ``<lake>/reference/``."""
        configured = self.load().reference.uris()
        return {**lake_reference_uris(lake.root), **configured}

    def references(self, lake: Lake) -> dict[str, pl.DataFrame]:
        return load_references(self.reference_uris(lake))
