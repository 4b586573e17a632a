"""Rewrites the blocks of the documents that are made from code, so they cannot drift from it.

    .venv/bin/python -m scripts.docs           # rewrite every block in place
    .venv/bin/python -m scripts.docs --check   # exit 1, naming the stale blocks, if any

A block is the text between `<!-- NAME:start -->` and `<!-- NAME:end -->` in a document of
`DOCUMENTS`. tests/docs/test_architecture_doc.py fails when a block differs from what this
module renders, so a change to the state machine or the sim's rate limits that forgets the
documents fails the tests.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from core.contracts.states import MachineState
from sim.ratelimit import ENDPOINTS
from workflows.machine.transitions import ALLOWED, STARTS_FROM, TARGET, Action, in_progress

ROOT = Path(__file__).resolve().parent.parent

# What each state means to the person who owns the machine. A new state needs its line here.
MEANINGS: dict[MachineState, str] = {
    MachineState.STARTING: "an instance is being rented and booted (create, or start of a "
    "stopped or failed machine); it waits for SSH, then the agent is installed",
    MachineState.RUNNING: "up: answers SSH, the agent reports",
    MachineState.IDLE: "up, with nothing going on (GPU under its threshold, nobody typing) "
    "since after the setup grace; hibernated `pause_after_minutes` later when auto-hibernation "
    "is on",
    MachineState.STOPPING: "the provider is stopping the instance",
    MachineState.STOPPED: "the instance is stopped on its host: disk kept, GPU released",
    MachineState.RESTARTING: "the provider is rebooting the instance",
    MachineState.PAUSING: "the workspace is snapshotted (a safety copy against losing the "
    "host), then, once the snapshot is committed, the instance is stopped",
    MachineState.PAUSED: "the instance is stopped on its host (disk kept, GPU released) and the "
    "workspace is in a committed snapshot; hibernated `hibernate_paused_after_minutes` later",
    MachineState.RESUMING: "the instance is started on its host; when the host cannot take it "
    "back, the snapshot is woken on a new offer and the stopped instance destroyed",
    MachineState.HIBERNATING: "the pre-hibernate hook runs, the workspace is snapshotted, and "
    "only once the snapshot is committed the instance is destroyed",
    MachineState.HIBERNATED: "no instance; the workspace is in a committed snapshot",
    MachineState.WAKING: "a new instance on any matching offer, the snapshot restored onto it",
    MachineState.FAILING_OVER: "moving between the GPU and the CPU standby: onto the standby "
    "after a lost GPU or a migration, or back onto a new GPU with the standby's workspace "
    "restored and verified",
    MachineState.STANDBY: "the CPU standby serves the workspace (every byte of the last "
    "completed sync); `ssh` points there; after a lost GPU a new one is looked for with "
    "backoff, after an idle or requested migration it waits for `migrate to gpu`",
    MachineState.ERROR: "something failed and needs the owner (the last event says what); "
    "start it again or destroy it",
    MachineState.DELETED: "hibernated for longer than `delete_after_minutes`: no instance, the "
    "record and the snapshot kept; it can still be woken",
    MachineState.DESTROYING: "every instance carrying the machine's label is being destroyed",
    MachineState.DESTROYED: "the end: no instance, the workflow completes; record and events kept",
}


def _states(items: Iterable[MachineState]) -> str:
    chosen = set(items)
    return ", ".join(f"`{s}`" for s in MachineState if s in chosen) or "—"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _yes(flag: bool) -> str:
    return "yes" if flag else ""


def states_block() -> str:
    missing = [str(s) for s in MachineState if s not in MEANINGS]
    if missing:
        raise KeyError(f"scripts/docs.py MEANINGS lacks {', '.join(missing)}")
    rows = [[f"`{s}`", MEANINGS[s], _yes(s.is_up()), _yes(s.bills())] for s in MachineState]
    return _table(["state", "meaning", "up", "GPU billed"], rows)


def transitions_block() -> str:
    rows = [[f"`{before}`", _states(ALLOWED[before])] for before in MachineState]
    return _table(["from", "may move to"], rows)


def actions_block() -> str:
    rows = []
    for action in Action:
        during = {in_progress(action, s) for s in STARTS_FROM[action]} - {None}
        target = TARGET.get(action)
        rows.append(
            [
                f"`{action}`",
                _states(STARTS_FROM[action]),
                _states(s for s in during if s) if during else "— (the state does not change)",
                f"`{target}`" if target else "—",
            ]
        )
    return _table(["action", "may begin in", "while under way", "ends in"], rows)


def _path(pattern: re.Pattern[str]) -> str:
    text = pattern.pattern.removeprefix("^").removesuffix("$")
    return text.replace(r"\d+", "{id}").replace("/?", "/")


def ratelimits_block() -> str:
    rows = [
        [
            e.name,
            "`" + "/".join(sorted(e.methods)) + " " + _path(e.pattern) + "`",
            f"{e.threshold:g}",
            'JSON `{"detail": ...}`' if e.json_body else "plain text",
        ]
        for e in ENDPOINTS
    ]
    return _table(["endpoint", "call", "minimum interval (s)", "429 body"], rows)


BLOCKS: dict[str, Callable[[], str]] = {
    "states": states_block,
    "transitions": transitions_block,
    "actions": actions_block,
    "ratelimits": ratelimits_block,
}
DOCUMENTS: dict[str, tuple[str, ...]] = {
    "docs/architecture.md": ("states", "transitions", "actions"),
    "docs/vast_wire.md": ("ratelimits",),
}


def replace_block(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    before, found, rest = text.partition(start)
    if not found or end not in rest:
        raise ValueError(f"no {start} ... {end} block")
    _old, _, after = rest.partition(end)
    return f"{before}{start}\n{body}\n{end}{after}"


def read_block(text: str, name: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    _, found, rest = text.partition(start)
    if not found or end not in rest:
        raise ValueError(f"no {start} ... {end} block")
    return rest.partition(end)[0].strip("\n")


def rendered(document: str, root: Path = ROOT) -> str:
    """The document as it should be: each of its blocks rendered afresh."""
    text = (root / document).read_text()
    for name in DOCUMENTS[document]:
        text = replace_block(text, name, BLOCKS[name]())
    return text


def stale(root: Path = ROOT) -> list[str]:
    """`document#block` for every block that differs from what the code renders."""
    found = []
    for document, names in DOCUMENTS.items():
        text = (root / document).read_text()
        for name in names:
            if read_block(text, name) != BLOCKS[name]():
                found.append(f"{document}#{name}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report stale blocks")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale()
        for problem in problems:
            sys.stderr.write(f"stale: {problem} (run python -m scripts.docs)\n")
        return 1 if problems else 0
    for document in DOCUMENTS:
        path = ROOT / document
        text = rendered(document)
        if text != path.read_text():
            path.write_text(text)
            sys.stdout.write(f"rewrote {document}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
