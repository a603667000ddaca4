"""Resources: where the lake and the landing area are, and how events are validated."""


from datetime import date, timedelta

import dagster as dg

from pipelines.settings import Settings
from transforms.lake import Lake
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
    }
