"""`/api/v1/ssh-keys`: a public key to add, and a key as shown."""

from __future__ import annotations

from datetime import datetime

import asyncssh
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas.common import ApiInput


class SshKeyCreate(ApiInput):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    public_key: str = Field(
        min_length=1, max_length=16384, examples=["ssh-ed25519 AAAA... me@host"]
    )

    @field_validator("public_key")
    @classmethod
    def _one_openssh_public_key(cls, value: str) -> str:
        """Stored in OpenSSH one-line form; a pasted private key is refused, never stored."""
        text = value.strip()
        if "PRIVATE KEY" in text:
            raise ValueError("this is a private key: paste the public key (the .pub file)")
        if "\n" in text:
            raise ValueError("one public key per request")
        try:
            key = asyncssh.import_public_key(text)
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise ValueError(f"not an OpenSSH public key: {exc}") from None
        return key.export_public_key().decode().strip()


class SshKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    public_key: str
    fingerprint: str
    created_at: datetime
