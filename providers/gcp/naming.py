"""Names, labels and request ids that make every GCP call safe to repeat.

An instance's name is a function of its Dumont label and the installation, so a create whose
answer was lost finds (or collides with, 409) the instance it made instead of making another;
its labels say which installation and which Dumont label it belongs to, so two installations
on one project never touch each other's instances.
"""

from __future__ import annotations

import re
import uuid

INSTALLATION_LABEL = "dumont-installation"
DUMONT_LABEL = "dumont-label"
_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
# requestIds must be UUIDs; uuid5 under this namespace makes them deterministic.
_REQUEST_NAMESPACE = uuid.UUID("0e4d8f1c-5b1a-4c57-9d8e-2f7a3c6b9e10")


def instance_name(label: str, installation: str) -> str:
    """`dumont-m-0123456789ab-2` of installation `a1b2c3d4` -> `dumont-a1b2c3d4-m-0123456789ab-2`:
    a valid GCE name (RFC 1035, at most 63 characters), the same on every try."""
    rest = label.removeprefix("dumont-").replace("_", "-").lower()
    name = f"dumont-{installation}-{rest}"[:63].rstrip("-")
    if not _NAME.fullmatch(name):
        raise ValueError(f"label {label!r} gives no valid GCE instance name ({name!r})")
    return name


def instance_labels(label: str, installation: str) -> dict[str, str]:
    return {INSTALLATION_LABEL: installation, DUMONT_LABEL: label.lower()}


def label_filter(installation: str, label: str | None = None) -> str:
    """A list filter for this installation's instances (with `label`: that one label)."""
    terms = [f'labels.{INSTALLATION_LABEL} = "{installation}"']
    if label is not None:
        terms.append(f'labels.{DUMONT_LABEL} = "{label.lower()}"')
    return " AND ".join(terms)


def insert_request_id(name: str, zone: str, generation: int = 0) -> str:
    """The same id for every try of one insert: GCE answers a repeat with the first one's
    operation instead of acting twice. An insert known to have failed (its operation ended in
    an error, which GCE would replay) is tried again under the next generation."""
    return str(uuid.uuid5(_REQUEST_NAMESPACE, f"insert/{zone}/{name}/{generation}"))


def new_request_id() -> str:
    """One action (a stop, a delete): the same id across its own retries only."""
    return str(uuid.uuid4())


def split_instance_id(instance_id: str) -> tuple[str, str]:
    """Dumont's instance id for GCE, `zone/name` -> (zone, name)."""
    zone, sep, name = instance_id.partition("/")
    if not sep or not zone or not name:
        raise ValueError(f"not a GCP instance id (zone/name): {instance_id!r}")
    return zone, name


def join_instance_id(zone: str, name: str) -> str:
    return f"{zone}/{name}"
