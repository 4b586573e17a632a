"""`dumont dev` hands the sim its secrets so that any token works and none shows in `ps`."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

from core.settings import Settings
from dumont.devenv import DevSecrets
from dumont.stack import Stack
from tests.cli.conftest import free_port


def test_the_sim_starts_with_tokens_that_look_like_options(tmp_path: Path) -> None:
    # token_urlsafe starts one token in 32 with "-": the sim once read that as an option and
    # `dumont dev` failed on every start with those saved secrets.
    secrets = DevSecrets(
        s3_access_key="dumont0123456789abcdef",
        s3_secret_key="-s3-secret",
        vast_api_key="-vast-api-key",
        sim_admin_token="--admin-token-like",
    )
    settings = Settings(data_dir=tmp_path / "dumont", sim_port=free_port())
    stack = Stack(settings=settings, secrets=secrets, token="unused")
    [sim] = [spec for spec in stack.infrastructure() if spec.name == "sim"]
    assert not {secrets.vast_api_key, secrets.sim_admin_token} & set(sim.argv)

    process = subprocess.Popen(
        sim.argv, env=sim.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[1].decode()[-2000:]
            try:
                admin = httpx.get(
                    f"{stack.sim_url}/sim/admin/status",
                    headers={"X-Admin-Token": secrets.sim_admin_token},
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the sim never answered"
                time.sleep(0.2)
        assert admin.status_code == 200
        offers = httpx.get(
            f"{stack.sim_url}/api/v0/bundles/",
            headers={"Authorization": f"Bearer {secrets.vast_api_key}"},
        )
        assert offers.status_code == 200
    finally:
        process.terminate()
        process.wait(10)
