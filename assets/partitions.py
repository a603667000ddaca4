"""Daily partitions of every day-partitioned table: keys are ``YYYY-MM-DD`` in UTC.

Built from the settings (``ACTIVITYLOG_START_DATE``, ``ACTIVITYLOG_MAX_FUTURE_SKEW``) once per process,
when the asset modules are first imported: Dagster fixes an asset's partitions when it is declared.
"""

from __future__ import annotations

import math
import warnings

import dagster as dg

from transforms.settings import Settings

# backfill_policy is marked beta; we rely on its documented single-run behaviour.
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def partitions_for(settings: Settings) -> dg.DailyPartitionsDefinition:
    """Partitions from the first accepted day up to today, plus the days an accepted event may lie in the
    future (clock skew)."""
    return dg.DailyPartitionsDefinition(
        start_date=settings.validation.start_date.isoformat(),
        end_offset=1 + math.ceil(settings.validation.max_future_skew.total_seconds() / 86400),
        timezone="UTC",
    )


daily_partitions = partitions_for(Settings.from_env())
