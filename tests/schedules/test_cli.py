"""`dumont machines schedule` against the real API server (uvicorn, SQLite, Temporal)."""

from __future__ import annotations

import json

from tests.cli.conftest import ApiUser, add_machine, dumont


def test_set_show_and_clear_a_schedule(api_user: ApiUser) -> None:
    machine_id = add_machine(api_user)
    env = api_user.env()

    set_ = dumont(
        "machines", "schedule", machine_id, "--wake", "09:00", "--sleep", "18:00",
        "--tz", "America/Sao_Paulo", "--json", env=env,
    )  # fmt: skip
    shown = dumont("machines", "schedule", machine_id, env=env)

    assert set_.exit_code == 0, set_.output
    schedule = json.loads(set_.stdout)
    assert (schedule["wake_time"], schedule["sleep_time"], schedule["timezone"]) == (
        "09:00",
        "18:00",
        "America/Sao_Paulo",
    )
    assert schedule["next_wake"] and schedule["next_sleep"]
    assert shown.exit_code == 0, shown.output
    assert "America/Sao_Paulo" in shown.stdout
    # Next times are shown in the schedule's own zone: 09:00 and 18:00 there.
    assert "09:00 -03" in shown.stdout and "18:00 -03" in shown.stdout

    cleared = dumont("machines", "schedule", machine_id, "--clear", env=env)
    after = dumont("machines", "schedule", machine_id, env=env)

    assert cleared.exit_code == 0 and "schedule removed" in cleared.stdout
    assert after.exit_code == 0 and f"{machine_id} has no schedule" in after.stdout


def test_errors_print_the_apis_message(api_user: ApiUser) -> None:
    machine_id = add_machine(api_user)
    env = api_user.env()

    bad_zone = dumont(
        "machines", "schedule", machine_id, "--wake", "9:00", "--tz", "Mars/Olympus", env=env
    )
    bad_time = dumont("machines", "schedule", machine_id, "--sleep", "6pm", env=env)
    nothing = dumont("machines", "schedule", machine_id, "--clear", env=env)
    missing = dumont("machines", "schedule", "vast_nope", "--wake", "09:00", env=env)
    mixed = dumont("machines", "schedule", machine_id, "--clear", "--wake", "09:00", env=env)

    assert bad_zone.exit_code == 1 and "timezone: unknown time zone" in bad_zone.stderr
    assert bad_time.exit_code == 1 and "sleep_time: not a time" in bad_time.stderr
    assert nothing.exit_code == 1 and f"machine {machine_id} has no schedule" in nothing.stderr
    assert missing.exit_code == 1 and "machine vast_nope not found" in missing.stderr
    assert mixed.exit_code == 1 and "--clear" in mixed.stderr
    for result in (bad_zone, bad_time, nothing, missing, mixed):
        assert "Traceback" not in result.output
    assert "has no schedule" in dumont("machines", "schedule", machine_id, env=env).stdout
