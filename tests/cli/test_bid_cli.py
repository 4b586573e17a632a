"""`dumont machines create --interruptible --bid`, against the real API (no worker): the bid
reaches the machine; a bid that cannot be is refused before anything is sent (exit 2)."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import ApiUser, dumont

CREATE = ("machines", "create", "--gpu", "RTX 4090", "--image", "pytorch/pytorch", "--no-wait")


def test_an_interruptible_machine_at_a_bid(api_user: ApiUser) -> None:
    created = dumont(*CREATE, "--interruptible", "--bid", "0.35", "--json", env=api_user.env())
    assert created.exit_code == 0, created.output
    machine = json.loads(created.stdout)
    assert (machine["interruptible"], machine["bid_price"]) == (True, 0.35)
    shown = dumont("machines", "show", machine["id"], env=api_user.env())
    assert shown.exit_code == 0, shown.output
    assert "bid" in shown.stdout and "0.35" in shown.stdout
    plain = json.loads(dumont(*CREATE, "--json", env=api_user.env()).stdout)
    assert (plain["interruptible"], plain["bid_price"]) == (False, None)


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (("--bid", "0.35"), "--bid: a bid is only for an interruptible machine"),
        (("--interruptible", "--bid", "0"), "--bid: must be above 0 and at most 100"),
        (("--interruptible", "--bid", "250"), "--bid: must be above 0 and at most 100"),
        (
            ("--provider", "gcp", "--interruptible"),
            "--interruptible: only for provider vast, not gcp (GCP has `spot`)",
        ),
    ],
)
def test_a_bid_that_cannot_be_is_refused_before_sending(
    api_user: ApiUser, flags: tuple[str, ...], said: str
) -> None:
    refused = dumont(*CREATE, *flags, env=api_user.env())
    assert refused.exit_code == 2, refused.output
    assert said in " ".join(refused.stderr.split())
    assert json.loads(dumont("machines", "ls", "--json", env=api_user.env()).stdout) == []
