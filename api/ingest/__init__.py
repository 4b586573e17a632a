"""Heartbeat ingest: agent reports validated at the edge, queued, written in batches by one
background writer, and turned into machine-workflow signals on transitions only."""
