"""Delivery clients (Slack, webhooks, SIEM sinks, S3 and files). No Dagster here."""
