"""Machine ids: Dumont's own, stable for a machine's whole life, valid as an instance name or
label on every provider (GCE's rule is the strictest: a lowercase letter first, then lowercase
letters, digits and dashes, at most 63 characters)."""

from __future__ import annotations

import re
import secrets

# New ids: `m-` and 12 lowercase hex digits. Ids made before providers became pluggable
# (`vast_` and 12 hex digits) keep working.
MACHINE_ID = re.compile(r"^(m-[0-9a-f]{12}|vast_[0-9a-f]{12})$")


def new_machine_id() -> str:
    return f"m-{secrets.token_hex(6)}"


def is_machine_id(value: str) -> bool:
    return MACHINE_ID.fullmatch(value) is not None
