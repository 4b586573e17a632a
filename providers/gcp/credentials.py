"""Which Google credentials the GCP provider uses: Application Default Credentials in
production (`GOOGLE_APPLICATION_CREDENTIALS` names a service-account key file), or none at all
against the local cloud (`dumont dev`)."""

from __future__ import annotations

from typing import Literal

import google.auth
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.exceptions import DefaultCredentialsError

CredentialsMode = Literal["default", "anonymous"]
SCOPES = ["https://www.googleapis.com/auth/compute"]


def credentials_for(mode: CredentialsMode) -> Credentials | str:
    """The credentials for `mode`, or why there are none (for `Unconfigured`)."""
    if mode == "anonymous":
        return AnonymousCredentials()
    try:
        credentials, _project = google.auth.default(scopes=SCOPES)
    except DefaultCredentialsError as exc:
        return (
            "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file"
            f" (or DUMONT_GCP_CREDENTIALS=anonymous for the local cloud): {exc}"
        )
    return credentials
