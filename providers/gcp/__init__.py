"""Google Compute Engine: CPU VMs from a machine-type catalogue, on google-cloud-compute."""

from providers.gcp.provider import GcpProvider

__all__ = ["GcpProvider"]
