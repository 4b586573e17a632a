"""`dumont alerts ...`: what fired, the rules that decide it, and the webhook it is posted to."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

from dumont.client import DumontClient
from dumont.config import load_client_config
from dumont.output import console, fail, print_json, reports_errors, table, when

app = typer.Typer(help="Alerts on your machines, their rules and webhook.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

# The API's rule kinds, and the shorter names the CLI also accepts.
RULES = {
    "gpu_utilization": "GPU utilisation above",
    "disk_usage": "disk usage above",
    "memory_usage": "memory usage above",
    "machine_offline": "agent silent",
}
ALIASES = {"gpu": "gpu_utilization", "disk": "disk_usage", "memory": "memory_usage",
           "ram": "memory_usage", "offline": "machine_offline"}  # fmt: skip
STATE_STYLES = {"firing": "bold red", "resolved": "green"}


def _client() -> DumontClient:
    return DumontClient(load_client_config())


def rule_kind(name: str) -> str:
    """`gpu`, `gpu-utilization` or `gpu_utilization` → the API's kind."""
    normalised = name.strip().lower().replace("-", "_")
    kind = ALIASES.get(normalised, normalised)
    if kind not in RULES:
        names = ", ".join([*RULES, *ALIASES])
        raise fail(f"no alert rule {name!r}; use one of {names}")
    return kind


def duration_text(seconds: int) -> str:
    if seconds == 0:
        return "at once"
    if seconds % 60:
        return f"for {seconds} s"
    return f"for {seconds // 60} min"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:g}%"


def _print_rules(config: dict[str, Any]) -> None:
    rows = table("RULE", "FIRES WHEN", "THRESHOLD", "HOLDS", "ENABLED", keep_whole=("RULE",))
    for rule in config["rules"]:
        rows.add_row(
            rule["kind"],
            RULES.get(rule["kind"], rule["kind"]),
            percent(rule.get("threshold")),
            duration_text(rule["duration_seconds"]),
            "[green]yes[/]" if rule["enabled"] else "[dim]no[/]",
        )
    console.print(rows)
    _print_webhook(config)


def _print_webhook(config: dict[str, Any]) -> None:
    url = config.get("webhook_url")
    console.print(f"webhook: {url or 'none'}", markup=False, soft_wrap=True)
    if url and not config.get("webhook_secret_created_at"):
        console.print(
            "  deliveries are signed with a secret you do not have yet: "
            "`dumont alerts webhook-secret`",
            soft_wrap=True,
        )


@app.command("ls")
@reports_errors
def list_alerts(
    state: Annotated[
        Literal["firing", "resolved"] | None, typer.Option(help="Only alerts in this state.")
    ] = None,
    machine: Annotated[str | None, typer.Option(help="Only this machine's alerts.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Alerts that fired, newest first."""
    with _client() as client:
        alerts = client.list_alerts(state, machine, limit)
    if as_json:
        print_json(alerts)
        return
    if not alerts:
        console.print("No alerts." if state is None else f"No {state} alerts.")
        return
    rows = table(
        "ID", "MACHINE", "RULE", "STATE", "VALUE", "FIRED", "RESOLVED", "REASON",
        keep_whole=("ID", "MACHINE", "STATE", "FIRED", "RESOLVED"),
    )  # fmt: skip
    for alert in alerts:
        style = STATE_STYLES.get(alert["state"], "cyan")
        rows.add_row(
            str(alert["id"]),
            alert["machine_id"],
            alert["kind"],
            f"[{style}]{alert['state']}[/]",
            percent(alert.get("value")),
            when(alert.get("fired_at")),
            when(alert.get("resolved_at")),
            alert.get("resolved_reason") or alert.get("reason") or "",
        )
    console.print(rows)


@app.command("rules")
@reports_errors
def show_rules(as_json: JsonOption = False) -> None:
    """Your alert rules and webhook."""
    with _client() as client:
        config = client.alert_rules()
    if as_json:
        print_json(config)
    else:
        _print_rules(config)


@app.command("set-rule")
@reports_errors
def set_rule(
    rule: Annotated[
        str, typer.Argument(help="gpu_utilization, disk_usage, memory_usage or machine_offline.")
    ],
    threshold: Annotated[
        float | None, typer.Option(help="Percent; fires strictly above it.")
    ] = None,
    minutes: Annotated[
        float | None, typer.Option(min=0, help="How long the condition must hold first.")
    ] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enabled/--disabled", help="Turn the rule on or off.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Change one rule; what you leave out stays as it is."""
    change: dict[str, Any] = {"kind": rule_kind(rule)}
    if threshold is not None:
        change["threshold"] = threshold
    if minutes is not None:
        change["duration_seconds"] = round(minutes * 60)
    if enabled is not None:
        change["enabled"] = enabled
    if len(change) == 1:
        raise fail("nothing to change: give --threshold, --minutes, --enabled or --disabled")
    with _client() as client:
        config = client.update_alert_rules({"rules": [change]})
    if as_json:
        print_json(config)
    else:
        _print_rules(config)


@app.command("webhook")
@reports_errors
def webhook(
    url: Annotated[
        str | None, typer.Argument(help="http(s) URL alert events are posted to.")
    ] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Stop posting alert events.")] = False,
) -> None:
    """Set (or show, or --remove) the URL alert events are posted to."""
    if url is not None and remove:
        raise fail("give a URL or --remove, not both")
    with _client() as client:
        if url is None and not remove:
            config = client.alert_rules()
        else:
            config = client.update_alert_rules({"webhook_url": url})
    _print_webhook(config)


@app.command("webhook-secret")
@reports_errors
def webhook_secret() -> None:
    """A new secret that signs webhook posts; the previous one stops now. Shown only once."""
    with _client() as client:
        secret = client.rotate_webhook_secret()
    # Printed bare on stdout so it can be captured; the hint goes to stderr.
    print(secret["webhook_secret"])
    typer.echo(
        "Shown only now. Each post carries X-Dumont-Signature: sha256=HMAC-SHA256(secret, body).",
        err=True,
    )


@app.command("deliveries")
@reports_errors
def deliveries(
    status: Annotated[
        Literal["pending", "delivered", "failed"] | None,
        typer.Option(help="Only deliveries in this state."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Webhook posts of alert events and how each attempt went."""
    with _client() as client:
        items = client.alert_deliveries(status, limit)
    if as_json:
        print_json(items)
        return
    if not items:
        console.print("No deliveries.")
        return
    rows = table(
        "ID", "ALERT", "EVENT", "STATUS", "TRIES", "LAST RESULT", "CREATED", "URL",
        keep_whole=("ID", "STATUS", "CREATED"),
    )  # fmt: skip
    for item in items:
        code = item.get("last_status_code")
        last = f"HTTP {code}" if code is not None else item.get("last_error") or "-"
        rows.add_row(
            str(item["id"]),
            str(item["alert_id"]),
            item["event"],
            item["status"],
            str(item["attempts"]),
            last,
            when(item.get("created_at")),
            item["url"],
        )
    console.print(rows)
