"""Meter operations beyond readings: the clock (drift, corrections) and event journals (with alarms).

`settings` holds the ``[clock]`` and ``[events]`` configuration (imported by `amr.config`: it
imports nothing heavy); `clock` the policy and its service; `journals` the journal reader of
the collector; `alarms` the alarm sender; `command` the ``amr clock`` and ``amr events`` commands.
"""
