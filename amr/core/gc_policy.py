"""How the process uses Python's cyclic garbage collector.

Readings, their value maps and verdicts hold no reference cycles: reference counting frees
them. But a bulk job makes hundreds of thousands of them that live for a batch, and the
cyclic collector, triggered by the count of new objects, scans them again and again (about
40 % of the time of validating a batch). Such jobs pause it (`paused_gc`); whatever cycles
appear meanwhile are collected once it runs again. A long-running collector holding a
connection per device keeps it running with rarer young collections (`tune_gc`).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

COLLECTOR_THRESHOLDS = (20_000, 20, 20)  # allocations before a young collection; young, middle per older one


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run the body without cyclic collections; restores the collector as it was (safe to nest and
    to use from several threads: the outermost pause started while collecting turns it back on)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_WHOLE_PROCESS = False


def process_is_a_command() -> None:
    """Declare that this process runs one `amr` command from its start (the console script), not
    a library or a test session inside a larger process: see `freeze_start_up`."""
    global _WHOLE_PROCESS
    _WHOLE_PROCESS = True


def freeze_start_up() -> None:
    """In a command's own process, move everything made so far (the modules' objects, the
    configuration, the meters) out of the cyclic collector's scans (`gc.freeze`): they live as
    long as the process, and every later collection, the one at exit too, would scan them again
    (a fifth of a second of a command's start-up). Elsewhere it does nothing: a test session's
    collector must still collect the garbage of its earlier tests."""
    if _WHOLE_PROCESS:
        gc.freeze()


def tune_gc() -> None:
    """Set the collector for a process that holds thousands of connections for its whole life.

    Configuration, meters and drivers live as long as the process: they are moved out of the
    collector's scans (`gc.freeze`). A sweep makes and drops many short-lived objects and keeps
    a connection per device: with Python's default thresholds the full collections that follow
    scan every connection again and again, and their pauses make the event loop late, so that
    answers which came in time look like timeouts. Young collections are made rarer
    (`COLLECTOR_THRESHOLDS`); nothing is turned off, cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    wanted = COLLECTOR_THRESHOLDS
    gc.set_threshold(*(max(now, want) for now, want in zip(gc.get_threshold(), wanted, strict=True)))
