"""Dumont labels on vast.ai instances, marked with the installation that made them.

vast.ai has one free-text label per instance, so the installation goes in it:
`dumont-m-0123456789ab-1@i1a2b3c4d`. An instance labelled before installations were marked
(no `@`) still counts as this installation's, so an upgrade never orphans a running machine;
one marked by another installation is never this one's.
"""

from __future__ import annotations

SEPARATOR = "@"


class InstallationLabels:
    def __init__(self, installation: str | None) -> None:
        self._installation = installation

    def written(self, label: str) -> str:
        """The label as it goes on a new instance."""
        if self._installation is None:
            return label
        return f"{label}{SEPARATOR}{self._installation}"

    def candidates(self, label: str) -> list[str]:
        """Every stored label that means `label` for this installation."""
        return list(dict.fromkeys([self.written(label), label]))

    def marked(self, stored: str | None) -> bool:
        """Whether the stored label carries this installation's id."""
        return (
            stored is not None
            and self._installation is not None
            and stored.endswith(f"{SEPARATOR}{self._installation}")
        )

    def read(self, stored: str | None) -> str | None:
        """The Dumont label of a stored one; None when another installation's."""
        if stored is None:
            return None
        label, separator, owner = stored.rpartition(SEPARATOR)
        if not separator:
            return stored
        return label if owner == self._installation else None
