"""Metrics history: raw agent samples and their minute/hour/day rollups, upserted as samples
arrive (so a chart never scans raw rows), the query behind the metrics API, and retention."""
