"""`dumont alerts ...` against the real API; alerts fire from reports posted through the real
ingest route, judged by the fleet monitor's own activity."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from activities.alerts import AlertActivities
from core.contracts.monitor import MonitorTick
from core.db import make_engine
from tests.cli.conftest import ApiUser, add_machine, agent_report, dumont, post_reports


def _row(output: str, text: str) -> str:
    return next(line for line in output.splitlines() if text in line)


def _monitor_tick(user: ApiUser, now: datetime) -> None:
    """What the fleet monitor does each round: open and close alerts as of `now`."""
    engine = make_engine(user.database_url)
    try:
        AlertActivities(engine).evaluate_alerts(MonitorTick(now=now))
    finally:
        engine.dispose()


def test_rules_show_the_defaults_and_change_one_at_a_time(api_user: ApiUser) -> None:
    defaults = dumont("alerts", "rules", env=api_user.env())

    assert defaults.exit_code == 0, defaults.output
    gpu = _row(defaults.stdout, "gpu_utilization")
    assert "90%" in gpu and "for 5 min" in gpu and "yes" in gpu
    assert "for 90 s" in _row(defaults.stdout, "machine_offline")
    assert "webhook: none" in defaults.stdout

    changed = dumont(
        "alerts", "set-rule", "gpu", "--threshold", "80", "--minutes", "2", env=api_user.env()
    )
    disabled = dumont("alerts", "set-rule", "disk-usage", "--disabled", env=api_user.env())

    assert changed.exit_code == 0 and disabled.exit_code == 0, changed.output + disabled.output
    rules = {
        r["kind"]: r
        for r in json.loads(dumont("alerts", "rules", "--json", env=api_user.env()).stdout)["rules"]
    }
    assert (
        rules["gpu_utilization"]["threshold"],
        rules["gpu_utilization"]["duration_seconds"],
    ) == (
        80,
        120,
    )
    assert rules["gpu_utilization"]["enabled"] and not rules["disk_usage"]["enabled"]
    assert rules["disk_usage"]["threshold"] == 85  # left as it was


def test_bad_rule_changes_are_explained(api_user: ApiUser) -> None:
    unknown = dumont("alerts", "set-rule", "fan", "--threshold", "5", env=api_user.env())
    nothing = dumont("alerts", "set-rule", "gpu", env=api_user.env())
    offline_threshold = dumont(
        "alerts", "set-rule", "offline", "--threshold", "5", env=api_user.env()
    )

    assert unknown.exit_code == 1 and "no alert rule 'fan'" in unknown.stderr
    assert nothing.exit_code == 1 and "nothing to change" in nothing.stderr
    assert offline_threshold.exit_code == 1
    assert "machine_offline takes no threshold" in offline_threshold.stderr
    for result in (unknown, nothing, offline_threshold):
        assert "Traceback" not in result.output


def test_webhook_set_show_remove_and_secret(api_user: ApiUser) -> None:
    set_ = dumont("alerts", "webhook", "https://hooks.example.com/dumont", env=api_user.env())
    shown = dumont("alerts", "webhook", env=api_user.env())
    bad = dumont("alerts", "webhook", "not a url", env=api_user.env())

    assert set_.exit_code == 0, set_.output
    assert "webhook: https://hooks.example.com/dumont" in shown.stdout
    assert "dumont alerts webhook-secret" in shown.stdout  # no secret yet: says how to get one
    assert bad.exit_code == 1 and "webhook_url" in bad.stderr

    secret = dumont("alerts", "webhook-secret", env=api_user.env())
    again = dumont("alerts", "webhook-secret", env=api_user.env())

    assert secret.exit_code == 0, secret.output
    assert len(secret.stdout.strip()) >= 20 and secret.stdout.strip() != again.stdout.strip()
    assert "Shown only now" in secret.stderr
    after = dumont("alerts", "rules", env=api_user.env())
    assert secret.stdout.strip() not in after.stdout
    assert "webhook-secret" not in after.stdout

    removed = dumont("alerts", "webhook", "--remove", env=api_user.env())
    assert removed.exit_code == 0 and "webhook: none" in removed.stdout


def test_alerts_fire_and_resolve_from_the_machines_reports(api_user: ApiUser) -> None:
    machine_id = add_machine(api_user)
    rule = dumont(
        "alerts", "set-rule", "gpu", "--threshold", "80", "--minutes", "2", env=api_user.env()
    )
    hook = "http://127.0.0.1:9/dumont-hook"  # nothing listens: the post stays pending
    webhook = dumont("alerts", "webhook", hook, env=api_user.env())
    assert rule.exit_code == 0 and webhook.exit_code == 0
    now = datetime.now(UTC)
    busy = [
        agent_report(machine_id, now - timedelta(seconds=30 * i), 95.0) for i in range(6, -1, -1)
    ]
    post_reports(api_user, machine_id, busy)
    _monitor_tick(api_user, now + timedelta(seconds=1))

    firing = dumont("alerts", "ls", "--state", "firing", env=api_user.env())

    assert firing.exit_code == 0, firing.output
    row = _row(firing.stdout, machine_id)
    assert "gpu_utilization" in row and "firing" in row and "95%" in row
    assert "above 80%" in row
    deliveries = dumont("alerts", "deliveries", env=api_user.env())
    posted = _row(deliveries.stdout, "alert.firing")
    assert "pending" in posted and hook in posted

    later = now + timedelta(seconds=30)
    post_reports(api_user, machine_id, [agent_report(machine_id, later, 10.0)])
    _monitor_tick(api_user, later + timedelta(seconds=1))

    still_firing = dumont("alerts", "ls", "--state", "firing", env=api_user.env())
    resolved = dumont("alerts", "ls", "--state", "resolved", "--json", env=api_user.env())

    assert "No firing alerts." in still_firing.stdout
    [alert] = json.loads(resolved.stdout)
    assert alert["machine_id"] == machine_id and alert["resolved_at"] is not None
    everything = dumont("alerts", "ls", "--machine", machine_id, env=api_user.env())
    assert "resolved" in _row(everything.stdout, machine_id)
