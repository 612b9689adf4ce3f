"""Meter health: the state rules, the log lines a dispatcher sees, and what to save next.

State rules (N = ``[collector] offline_after``, default 3):

- **online** after a poll that read every channel and tariff asked for;
- **degraded** after a poll that read values but reported channel or tariff errors, and after
  1..N-1 consecutive failed polls (the meter may be coming back, or going away);
- **offline** after N consecutive failed polls; the next poll that reads anything ends it;
- **unknown** before the first poll.

A poll is one scheduled or requested read with all its retries; a failed poll counts once.
A success resets the run of consecutive failures. Push meters (MQTT) count each message as a
poll: one with values is a success, one that yielded no value a failure.

Logging, as Home Assistant does it: the first problem of a meter is a WARNING, repeats are
DEBUG, going offline is one more WARNING, and the recovery is one INFO line. Configured
passwords never reach a log line or the stored error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from amr.store.health import HealthRecord

log = logging.getLogger("amr.collector")


def after_success(record: HealthRecord, at: datetime, errors: Mapping[str, str] | None = None) -> HealthRecord:
    """The state after a poll that read values; `errors` are the channels or tariffs that failed."""
    problem = "; ".join(f"{where}: {why}" for where, why in (errors or {}).items()) or None
    return replace(
        record,
        status="degraded" if problem else "online",
        last_poll_at=at,
        last_success_at=at,
        last_error=problem or record.last_error,
        last_error_at=at if problem else record.last_error_at,
        consecutive_failures=0,
        polls=record.polls + 1,
    )


def after_failure(record: HealthRecord, at: datetime, error: str, offline_after: int) -> HealthRecord:
    """The state after a failed poll."""
    run = record.consecutive_failures + 1
    return replace(
        record,
        status="offline" if run >= offline_after else "degraded",
        last_poll_at=at,
        last_error=error,
        last_error_at=at,
        consecutive_failures=run,
        polls=record.polls + 1,
        failures=record.failures + 1,
    )


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every configured secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class HealthBook:
    """The health of every collected meter, in memory; changed records wait in `take_dirty`."""

    def __init__(
        self,
        meter_ids: Mapping[str, int],
        offline_after: int,
        secrets: Callable[[str], Iterable[str]] | None = None,
    ) -> None:
        """`meter_ids`: serial → store id; `secrets`: a meter's passwords to keep out of messages, asked
        the first time one of its messages is redacted."""
        self.offline_after = offline_after
        self._ids = dict(meter_ids)
        self._records: dict[str, HealthRecord] = {}  # restored or asked for; a fresh one is made when first asked
        self._secrets_of = secrets
        self._secrets: dict[str, tuple[str, ...]] = {}
        self._noisy: set[str] = set()  # meters whose current problem was already logged loudly
        self._dirty: set[str] = set()

    def restore(self, stored: Mapping[int, HealthRecord]) -> None:
        """Continue from the records saved by an earlier run (counters carry on)."""
        for serial, meter_id in self._ids.items():
            if meter_id in stored:
                self._records[serial] = stored[meter_id]

    def get(self, serial: str) -> HealthRecord:
        """The current record of a meter (`KeyError` for one not collected)."""
        record = self._records.get(serial)
        if record is None:
            record = self._records[serial] = HealthRecord(self._ids[serial])
        return record

    def all(self) -> dict[str, HealthRecord]:
        """Every record by serial."""
        return {serial: self.get(serial) for serial in self._ids}

    def failing(self, serial: str) -> bool:
        """Whether the meter's last poll failed (False for one not collected or not polled yet)."""
        record = self._records.get(serial)
        return record is not None and record.consecutive_failures > 0

    def ids(self) -> list[int]:
        """Store ids of the meters."""
        return list(self._ids.values())

    def __contains__(self, serial: object) -> bool:
        return serial in self._ids

    def success(self, serial: str, at: datetime, errors: Mapping[str, str] | None = None, where: str = "") -> None:
        """Record a poll that read values (with the channel or tariff errors it reported)."""
        if serial not in self._ids:
            return
        clean = {k: self.redact(serial, v) for k, v in (errors or {}).items()}
        before = self.get(serial)
        after = after_success(before, at, clean)
        self._store(serial, after)
        label = _label(serial, where)
        if clean:
            level = logging.DEBUG if serial in self._noisy else logging.WARNING
            log.log(level, "meter %s answered with errors: %s", label, after.last_error)
            self._noisy.add(serial)
        elif serial in self._noisy or before.status in ("offline", "degraded"):
            self._noisy.discard(serial)
            if before.consecutive_failures:
                log.info("meter %s answers again after %d failed poll(s)", label, before.consecutive_failures)
            else:
                log.info("meter %s answers fully again", label)

    def failure(self, serial: str, at: datetime, error: str, where: str = "") -> None:
        """Record a failed poll."""
        if serial not in self._ids:
            return
        message = self.redact(serial, error)
        before = self.get(serial)
        after = after_failure(before, at, message, self.offline_after)
        self._store(serial, after)
        label = _label(serial, where)
        if after.status == "offline" and before.status != "offline":
            log.warning("meter %s is offline after %d failed poll(s): %s", label, after.consecutive_failures, message)
        elif serial not in self._noisy:
            log.warning("meter %s: %s", label, message)
        else:
            log.debug("meter %s failed again (%d in a row): %s", label, after.consecutive_failures, message)
        self._noisy.add(serial)

    def redact(self, serial: str, text: str) -> str:
        """`text` without the meter's configured passwords."""
        found = self._secrets.get(serial)
        if found is None:
            found = self._secrets[serial] = tuple(s for s in self._secrets_of(serial) if s) if self._secrets_of else ()
        return redact(text, found)

    def take_dirty(self) -> list[HealthRecord]:
        """Records changed since the last call, to be saved."""
        dirty = [self._records[s] for s in sorted(self._dirty)]
        self._dirty.clear()
        return dirty

    def put_back(self, records: Iterable[HealthRecord]) -> None:
        """Mark records as unsaved again (the store was not reachable)."""
        by_id = {meter_id: serial for serial, meter_id in self._ids.items()}
        self._dirty.update(by_id[r.meter_id] for r in records if r.meter_id in by_id)

    def _store(self, serial: str, record: HealthRecord) -> None:
        self._records[serial] = record
        self._dirty.add(serial)


def _label(serial: str, where: str) -> str:
    return f"{serial} ({where})" if where else serial
