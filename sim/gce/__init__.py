"""A Google Compute Engine-compatible endpoint whose instances are sandbox machines.

The official `google-cloud-compute` client runs against it unchanged; the wire contract is
docs in /work/shared/reference/gce_api.md (summarised in sim/README.md).
"""
