"""The benchmarks' helper processes: a line from one within a time limit, and ending them."""

from __future__ import annotations

import contextlib
import select
import subprocess
from collections.abc import Iterable
from typing import IO


def readline(stream: IO[str], timeout: float, what: str) -> str:
    """The next line of a child's output; `RuntimeError` naming `what` when none comes in time."""
    ready, _, _ = select.select([stream], [], [], timeout)
    line = stream.readline() if ready else ""
    if not line:
        raise RuntimeError(f"{what} within {timeout:g} s")
    return line


def end(procs: Iterable[subprocess.Popen[str]]) -> None:
    """Close every child's stdin (its signal to stop), wait for each, kill those that do not end."""
    procs = list(procs)
    for proc in procs:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
