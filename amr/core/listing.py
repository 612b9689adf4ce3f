"""Long lists in one line of a message: the first few names and how many more."""

from __future__ import annotations

from collections.abc import Sequence

NAMED = 5  # names given in a message about many things


def first_few(names: Sequence[str], named: int = NAMED) -> str:
    """The first `named` of `names`, and how many more (``a, b, c, d, e and 495 more``)."""
    shown = ", ".join(names[:named])
    return shown if len(names) <= named else f"{shown} and {len(names) - named} more"
