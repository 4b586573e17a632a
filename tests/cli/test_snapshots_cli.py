"""`dumont snapshots retention` against the real API: show, change, reset, refuse."""

from __future__ import annotations

import json

from tests.cli.conftest import ApiUser, dumont


def _row(output: str, text: str) -> str:
    return next(line for line in output.splitlines() if text in line)


def test_retention_shows_changes_and_resets(api_user: ApiUser) -> None:
    shown = dumont("snapshots", "retention", env=api_user.env())
    assert shown.exit_code == 0, shown.output
    assert "3 snapshots per machine" in _row(shown.stdout, "keep last")
    assert "kept until you delete them" in _row(shown.stdout, "deleted machines")
    assert "defaults apply" in shown.stdout

    changed = dumont(
        "snapshots", "retention", "--keep-last", "1", "--deleted-retention-days", "30",
        env=api_user.env(),
    )  # fmt: skip
    assert changed.exit_code == 0, changed.output
    keep = _row(changed.stdout, "keep last")
    assert "1 snapshot per machine" in keep and "default 3" in keep
    assert "kept for 30 days" in _row(changed.stdout, "deleted machines")

    # --reset with a value: that value, the default for the rest.
    partly = dumont("snapshots", "retention", "--reset", "--keep-last", "2", env=api_user.env())
    assert partly.exit_code == 0, partly.output
    as_json = json.loads(dumont("snapshots", "retention", "--json", env=api_user.env()).stdout)
    assert (as_json["keep_last"], as_json["deleted_retention_days"]) == (2, 0)

    reset = dumont("snapshots", "retention", "--reset", "--json", env=api_user.env())
    assert json.loads(reset.stdout)["customized"] is False


def test_bad_retention_is_explained_and_changes_nothing(api_user: ApiUser) -> None:
    refused = dumont("snapshots", "retention", "--keep-last", "0", env=api_user.env())

    assert refused.exit_code == 1
    assert "keep_last: Input should be greater than or equal to 1" in refused.stderr
    assert "Traceback" not in refused.output
    shown = json.loads(dumont("snapshots", "retention", "--json", env=api_user.env()).stdout)
    assert shown["keep_last"] == 3 and shown["customized"] is False
