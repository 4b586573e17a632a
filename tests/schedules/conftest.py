"""The API fixtures of tests/api and the CLI's real server of tests/cli, for schedule tests."""

from tests.api.conftest import api, sqlite_url
from tests.cli.conftest import api_server, api_user

__all__ = ["api", "api_server", "api_user", "sqlite_url"]
