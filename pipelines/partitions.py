"""Daily partitions of every day-partitioned table: keys are ``YYYY-MM-DD`` in UTC."""


import math

import warnings

import dagster as dg

# backfill_policy is marked beta; we rely on its documented single-run behaviour.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from pipelines.settings import Settings

_settings = Settings.from_env()

# Partitions run up to today, plus the days an accepted event may lie in the future (clock skew).
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=_settings.validation.start_date.isoformat(),
    end_offset=1 + math.ceil(_settings.validation.max_future_skew.total_seconds() / 86400),
    timezone="UTC",
)
