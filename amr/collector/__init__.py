"""The collector: polls meters on schedule, receives push meters, writes every reading through one writer.

Modules, one job each:

- `amr.collector.schedule` — a meter's schedule as an APScheduler trigger; fire times.
- `amr.collector.retry` — which driver errors are retried; timeouts, backoff, worst cases.
- `amr.collector.bus` — one worker per polled bus: serial lines one transaction at a time,
  TCP buses up to ``concurrency``; a meter's read with its retries.
- `amr.collector.push` — push buses (MQTT) kept running.
- `amr.collector.writer` — the one writer: batches, store and forward.
- `amr.collector.buffer` — the durable SQLite buffer used while the store is unreachable.
- `amr.collector.health` — meter health rules and log lines (kept by `amr.store.health`).
- `amr.collector.collector` — `Collector`, which wires them together.
- `amr.collector.result` — `PollResult` (one poll) and `ApiPoller` («poll now» for the API).
- `amr.collector.command` — ``amr collect``.

Import from the modules themselves: the package imports none of them, so a part (e.g. the API's
view of the leases, `amr.collector.status`) does not load the whole collector.
"""
