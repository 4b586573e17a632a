"""A Google Compute Engine-compatible endpoint whose instances are sandbox machines.

The official `google-cloud-compute` client runs against it unchanged; the wire contract (the
team's reference notes, found by experiment) is summarised in sim/README.md.
"""
