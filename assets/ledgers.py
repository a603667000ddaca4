"""The delivery ledgers in the asset graph, downstream of ``activity_log``: declared here, materialized
by the jobs that write them (the notify job records its per-subscription counts on ``deliveries``)."""

import dagster as dg

# The ledger, shown in the asset graph downstream of activity_log; the notify job records its
# per-subscription counts as materializations of it.
deliveries = dg.AssetSpec(
    "deliveries", group_name="notify", deps=["activity_log"], kinds={"delta"},
    description="Deliveries ledger: one row per state change of each (subscription, event, destination) "
                "delivery (pending → sent | skipped | failed). Written by notify_job.",
)
