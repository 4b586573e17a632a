"""Settings a user gets wrong are refused at start with what to set, not discovered later as
silent machines."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import Settings


def test_agents_post_to_the_apis_own_port_unless_told_otherwise() -> None:
    assert Settings(api_port=8123).agent_api_url == "http://127.0.0.1:8123"
    assert Settings(api_host="0.0.0.0", api_port=9001).agent_api_url == "http://127.0.0.1:9001"
    told = Settings(api_port=8123, public_api_url="https://dumont.example.com/")
    assert told.agent_api_url == "https://dumont.example.com"


@pytest.mark.parametrize("url", ["dumont.example.com", "ftp://x", "http://", "https://x/?a=1"])
def test_a_public_api_url_machines_cannot_use_is_refused(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(public_api_url=url)
    assert "DUMONT_PUBLIC_API_URL" in str(refused.value)
