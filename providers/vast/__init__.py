"""vast.ai: a GPU marketplace over REST (httpx); the sim in sim/ speaks the same protocol."""

from providers.vast.provider import VastProvider

__all__ = ["VastProvider"]
