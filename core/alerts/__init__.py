"""Alerts: per-owner rules, their evaluation over the agents' samples, and signed webhooks."""
