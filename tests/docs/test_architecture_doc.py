"""The documents stay true to the code: the generated tables are what `python -m scripts.docs`
renders now, every route the sim serves is in the wire contract, every repository path the
documents name exists, and no document points outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from core.contracts.states import MachineState
from scripts import docs
from sim.api_vast import vast_router
from sim.config import SimConfig
from sim.runtime import Sim

ROOT = docs.ROOT
# Every document a reader of a clone gets, and the ones that link them.
DOCUMENTS = [
    "README.md",
    "CONTRIBUTING.md",
    "contributing/PROVIDERS.md",
    "sim/README.md",
    "agent/PROTOCOL.md",
    "docs/architecture.md",
    "docs/vast_wire.md",
]


def read(document: str) -> str:
    return (ROOT / document).read_text()


@pytest.mark.parametrize(
    ("document", "block"),
    [(document, block) for document, blocks in docs.DOCUMENTS.items() for block in blocks],
)
def test_generated_block_matches_the_code(document: str, block: str) -> None:
    assert docs.read_block(read(document), block) == docs.BLOCKS[block](), (
        f"{document}: the {block} table differs from the code; run .venv/bin/python -m "
        "scripts.docs and commit the result"
    )


def test_check_mode_reports_nothing_stale() -> None:
    assert docs.stale() == []
    assert docs.main(["--check"]) == 0


def test_a_stale_block_is_found_and_rewritten(tmp_path: Path) -> None:
    for document in docs.DOCUMENTS:
        target = tmp_path / document
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(read(document).replace("| `stopped` | `starting`, `destroying` |", ""))
    assert docs.stale(tmp_path) == ["docs/architecture.md#transitions"]
    fixed = docs.rendered("docs/architecture.md", tmp_path)
    assert fixed == read("docs/architecture.md")


def test_every_transition_and_state_is_in_the_tables() -> None:
    text = read("docs/architecture.md")
    transitions = docs.read_block(text, "transitions")
    states = docs.read_block(text, "states")
    for state in MachineState:
        assert f"| `{state}` |" in transitions
        assert f"| `{state}` |" in states


def test_a_missing_block_is_an_error() -> None:
    with pytest.raises(ValueError, match="no <!-- transitions:start -->"):
        docs.replace_block("no markers here", "transitions", "x")


def test_every_sim_route_is_in_the_wire_contract(tmp_path: Path) -> None:
    sim = Sim(SimConfig(data_dir=tmp_path, api_key="k", isolation="plain", offer_count=4))
    text = read("docs/vast_wire.md")
    routes = [
        (method, route.path)
        for route in vast_router(sim).routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in sorted(route.methods or ())
    ]
    assert routes
    missing = [
        f"{method} {path}"
        for method, path in routes
        if f"`{method} {path}/`" not in text and f"`{method} {path}`" not in text
    ]
    assert missing == [], f"docs/vast_wire.md lacks {missing}"


# A path into the repository: a top-level folder or file of it, then more.
_TOP = sorted(p.name for p in ROOT.iterdir() if not p.name.startswith("."))
_PATH = re.compile(r"`((?:" + "|".join(map(re.escape, _TOP)) + r")(?:/[\w.\-/]*)?)`")
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("document", DOCUMENTS)
def test_named_paths_exist(document: str) -> None:
    text = read(document)
    missing = [
        path
        for path in _PATH.findall(text)
        if "/" in path and not (ROOT / path.rstrip("/")).exists()
    ]
    base = (ROOT / document).parent
    missing += [
        link
        for link in _LINK.findall(text)
        if "://" not in link and not (base / link).resolve().exists()
    ]
    assert missing == [], f"{document} names paths that do not exist: {missing}"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_no_document_points_outside_the_repository(document: str) -> None:
    text = read(document)
    for outside in ("../shared", "/work/", "shared/DESIGN", "reference/vast_api", "gce_api.md"):
        assert outside not in text, f"{document} points outside the repository: {outside}"
    for link in _LINK.findall(text):
        if "://" not in link:
            assert (ROOT / document).parent.joinpath(link).resolve().is_relative_to(ROOT)


def test_readme_links_the_architecture_and_the_wire_contract() -> None:
    readme = read("README.md")
    assert "(docs/architecture.md)" in readme
    assert "(docs/vast_wire.md)" in readme
    assert "(docs/vast_wire.md)" in read("sim/README.md").replace("../docs/", "docs/")
