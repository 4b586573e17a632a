"""Which credentials and endpoint the GCP provider is built with: Application Default
Credentials (a service-account key file named by GOOGLE_APPLICATION_CREDENTIALS) in production,
none for the local cloud, and a clear "what to set" when neither is there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.credentials import AnonymousCredentials
from google.oauth2 import service_account

from core.settings import Settings
from providers.base import Unconfigured
from providers.gcp import GcpProvider
from providers.gcp.credentials import credentials_for


def service_account_file(path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "prod-project",
                "private_key_id": "abc123",
                "private_key": pem,
                "client_email": "dumont@prod-project.iam.gserviceaccount.com",
                "client_id": "1234567890",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    return path


def test_production_reads_the_key_file_google_application_credentials_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "GOOGLE_APPLICATION_CREDENTIALS", str(service_account_file(tmp_path / "k.json"))
    )
    credentials = credentials_for("default")
    assert isinstance(credentials, service_account.Credentials)
    assert credentials.service_account_email == "dumont@prod-project.iam.gserviceaccount.com"
    provider = GcpProvider.from_settings(Settings(gcp_project="prod-project"))
    assert isinstance(provider, GcpProvider)
    assert provider._compute.instances.api_endpoint == "compute.googleapis.com"  # Google's own


def test_without_credentials_it_says_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    made = GcpProvider.from_settings(Settings(gcp_project="prod-project"))
    assert isinstance(made, Unconfigured)
    assert made.why.startswith("set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file")
    assert "missing.json" in made.why


def test_the_local_cloud_needs_no_credentials() -> None:
    assert isinstance(credentials_for("anonymous"), AnonymousCredentials)
    settings = Settings(
        gcp_project="dumont-dev",
        gcp_credentials="anonymous",
        gcp_endpoint="http://127.0.0.1:8501",
        installation_id="i0000abcd",
    )
    provider = GcpProvider.from_settings(settings)
    assert isinstance(provider, GcpProvider)
    assert provider._compute.instances.api_endpoint == "http://127.0.0.1:8501"
