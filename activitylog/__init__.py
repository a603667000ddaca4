"""Client library of the activity-log pipeline: :mod:`activitylog.client` (the publisher API's client)."""
