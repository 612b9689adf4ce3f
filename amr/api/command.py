"""CLI commands of the API: ``amr api``, ``amr users`` and ``amr run`` (collector and API together).

Passwords are read from standard input (without echo on a terminal) and never printed or
logged. Wire into `amr.cli.build_parser` with ``add_parsers(sub)``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from amr.api.security import Passwords, digest, new_api_key
from amr.app import App
from amr.config import Config, load_config
from amr.core.logs import server_log_config
from amr.errors import ConfigError, InputError
from amr.store.auth_models import LINK_KINDS, ROLES
from amr.store.users import Users

log = logging.getLogger("amr.api")


def add_parsers(subparsers: Any) -> None:
    """Register ``api``, ``users`` and ``run`` on the `amr` command's subparsers."""

    def with_config(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("-c", "--config", required=True, help="the TOML configuration file")
        return parser

    def server(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--host", help="listen address (default [api] host)")
        parser.add_argument("--port", type=int, help="listen port (default [api] port)")

    p = with_config(subparsers.add_parser("api", help="serve the HTTP API", description="serve the HTTP API"))
    server(p)
    p.add_argument("--workers", type=int, default=1, help="processes serving the API (e.g. one per core)")
    p.set_defaults(func=cmd_api)

    p = with_config(
        subparsers.add_parser("run", help="run the collector and the HTTP API together", description="collector + API")
    )
    server(p)
    p.set_defaults(func=cmd_run)

    users = subparsers.add_parser("users", help="API users: add, list, disable, passwd, link, key")
    sub = users.add_subparsers(dest="users_command", required=True)
    p = with_config(sub.add_parser("add", help="add a user; the password is read from standard input"))
    p.add_argument("login")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--name", default="")
    p.add_argument("--no-password", action="store_true", help="no password (a service account using an API key)")
    p.add_argument("--api-key", action="store_true", help="issue an API key (role cabinet) and print it once")
    p.set_defaults(func=cmd_users_add)
    p = with_config(sub.add_parser("list", help="list users with their links"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_users_list)
    p = with_config(sub.add_parser("disable", help="disable a user at once (its tokens stop working)"))
    p.add_argument("login")
    p.add_argument("--enable", action="store_true", help="enable the user again")
    p.set_defaults(func=cmd_users_disable)
    p = with_config(sub.add_parser("passwd", help="set a password read from standard input; revokes tokens"))
    p.add_argument("login")
    p.set_defaults(func=cmd_users_passwd)
    p = with_config(sub.add_parser("link", help="link accounts, meters or objects to a user"))
    p.add_argument("login")
    for kind in LINK_KINDS:
        p.add_argument(f"--{kind}", action="append", default=[], help=f"a {kind} (repeatable)")
    p.add_argument("--unlink", action="store_true", help="remove the links instead")
    p.set_defaults(func=cmd_users_link)
    p = with_config(sub.add_parser("key", help="issue an API key for a service account, or revoke its keys"))
    p.add_argument("login")
    p.add_argument("--revoke", action="store_true")
    p.set_defaults(func=cmd_users_key)


def _now() -> datetime:
    return datetime.now(UTC)


def read_password(prompt: str = "password: ") -> str:
    """A password from standard input: prompted twice without echo on a terminal, else the first line."""
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if getpass.getpass("again: ") != first:
            raise InputError("the passwords differ; try again")
        password = first
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise InputError("empty password; give one on standard input")
    return password


def _users(config_path: str) -> tuple[App, Users]:
    app = App.open(config_path)
    return app, Users(app.store)


def cmd_users_add(args: argparse.Namespace) -> int:
    """``amr users add LOGIN --role R``."""
    password_hash = None if args.no_password else Passwords().hash(read_password())
    app, users = _users(args.config)
    with app:
        user = users.add(args.login, args.role, password_hash, _now(), args.name)
        print(f"user {user.login} ({user.role}) added")
        if args.api_key:
            _issue_key(users, user.login)
    return 0


def _issue_key(users: Users, login: str) -> None:
    key = new_api_key()
    users.add_api_key(login, digest(key), key[:12], _now())
    print(f"API key (shown once, keep it secret): {key}")


def cmd_users_list(args: argparse.Namespace) -> int:
    """``amr users list``."""
    app, users = _users(args.config)
    with app:
        found = users.all()
        keys = {u.login: users.api_key_count(u.login) for u in found}
    rows: list[dict[str, Any]] = [
        {
            "login": u.login,
            "name": u.name,
            "role": u.role,
            "disabled": u.disabled,
            "password": u.password_hash is not None,
            "api_keys": keys[u.login],
            "accounts": sorted(u.accounts),
            "meters": sorted(u.meters),
            "objects": sorted(u.objects),
        }
        for u in found
    ]
    if args.json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    for row in rows:
        links = "; ".join(f"{k}: {', '.join(row[k])}" for k in ("accounts", "meters", "objects") if row[k])
        state = " (disabled)" if row["disabled"] else ""
        print(f"{row['login']:<20} {row['role']:<10}{state} keys={row['api_keys']} {links}")
    print(f"{len(rows)} user(s)")
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    """``amr users disable LOGIN [--enable]``."""
    app, users = _users(args.config)
    with app:
        users.set_disabled(args.login, not args.enable)
    print(f"user {args.login} {'enabled' if args.enable else 'disabled'}")
    return 0


def cmd_users_passwd(args: argparse.Namespace) -> int:
    """``amr users passwd LOGIN`` (password on standard input)."""
    password_hash = Passwords().hash(read_password("new password: "))
    app, users = _users(args.config)
    with app:
        users.set_password(args.login, password_hash)
    print(f"password of {args.login} changed; its tokens are revoked")
    return 0


def cmd_users_link(args: argparse.Namespace) -> int:
    """``amr users link LOGIN --account A --meter S --object O [--unlink]``."""
    if not (args.account or args.meter or args.object):
        raise InputError("give at least one --account, --meter or --object")
    app, users = _users(args.config)
    with app:
        for kind in LINK_KINDS:
            values = getattr(args, kind)
            if kind == "meter":
                unknown = [s for s in values if s not in app.meters]
                if unknown and not args.unlink:
                    raise InputError(f"no meter {', '.join(unknown)} in the configuration")
            if values:
                users.link(args.login, kind, values, unlink=args.unlink)
    print(f"links of {args.login} {'removed' if args.unlink else 'added'}")
    return 0


def cmd_users_key(args: argparse.Namespace) -> int:
    """``amr users key LOGIN [--revoke]``."""
    app, users = _users(args.config)
    with app:
        if args.revoke:
            print(f"{users.revoke_api_keys(args.login, _now())} key(s) of {args.login} revoked")
        else:
            _issue_key(users, args.login)
    return 0


def _listen(args: argparse.Namespace, config: Config) -> tuple[str, int]:
    return args.host or config.api.host, args.port or config.api.port


def cmd_api(args: argparse.Namespace) -> int:
    """``amr api -c FILE [--host H] [--port P]``: serve the API until interrupted."""
    config = load_config(args.config)
    host, port = _listen(args, config)
    if args.workers > 1:
        import uvicorn

        from amr.api.app import CONFIG_VARIABLE

        # Each worker process opens the configuration named in the environment (see `app_from_environment`).
        os.environ[CONFIG_VARIABLE] = str(Path(args.config).resolve())
        App.open(config).close()  # migrate once, before the workers start
        uvicorn.run(
            "amr.api.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=args.workers,
            log_level="info",
            log_config=server_log_config(config.site.timezone),
        )
        return 0
    with ThreadPoolExecutor(1, thread_name_prefix="amr-open") as pool:
        # the store opened and the meters loaded, much of it waiting for the database, while the API's
        # modules (FastAPI, every route and its models) load here
        opening = pool.submit(App.open, config)
        import uvicorn

        from amr.api.app import create_app

        app = opening.result()
    with app:
        uvicorn.run(create_app(app), host=host, port=port, log_level="info",
                    log_config=server_log_config(config.site.timezone))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``amr run -c FILE``: the collector and the API in one process, stopped by SIGINT/SIGTERM."""
    config = load_config(args.config)
    return asyncio.run(_run(config, *_listen(args, config)))


async def _run(config: Config, host: str, port: int) -> int:
    import uvicorn
    from prometheus_client import CollectorRegistry

    from amr.api.app import create_app
    from amr.dashboard.polls import PollLog

    try:
        from amr.collector.collector import Collector
        from amr.collector.result import ApiPoller
    except ImportError as exc:
        raise ConfigError(f"the collector is not available in this installation ({exc}); use `amr api`") from None
    app = await asyncio.to_thread(App.open, config)
    try:
        registry = CollectorRegistry()
        collector = Collector(app)
        _count_polls(collector, registry)
        poller = ApiPoller(collector)
        api = create_app(app, poller, registry=registry)
        api.state.poll_log = PollLog().attach(collector)  # the dashboard's recent polls
        server = uvicorn.Server(uvicorn.Config(api, host=host, port=port, log_level="info",
                                               log_config=server_log_config(config.site.timezone)))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        if app.registry_version is not None:  # [registry] source = "database": the collector follows it
            from amr.registry.collecting import collect

            listeners = list(collector.on_poll)

            def adopt(new: Any) -> None:
                new.on_poll.extend(listeners)
                poller.collector = new

            stop = asyncio.Event()
            collecting = asyncio.create_task(collect(app, stop, first=collector, started=adopt))
            try:
                await server.serve()
            finally:
                stop.set()
                await collecting
            return 0
        await collector.start()
        try:
            await server.serve()
        finally:
            left = await collector.stop()
            if left:
                log.warning("%d reading(s) wait in the collector's buffer", left)
    finally:
        app.close()
    return 0


def _count_polls(collector: Any, registry: Any) -> None:
    """Poll counters in the shared registry, fed by the collector's ``on_poll`` hook when it has one."""
    from prometheus_client import Counter, Histogram

    polls = Counter("amr_collector_polls", "meter polls by bus and result", ["bus", "result"], registry=registry)
    errors = Counter("amr_collector_poll_errors", "failed polls by error kind", ["kind"], registry=registry)
    seconds = Histogram("amr_collector_poll_duration_seconds", "poll duration by bus", ["bus"], registry=registry)
    hooks = getattr(collector, "on_poll", None)
    if not isinstance(hooks, list):
        return

    def count(result: Any) -> None:
        outcome = "skipped" if result.skipped else ("ok" if result.ok else "error")
        polls.labels(result.bus, outcome).inc()
        if outcome == "error":
            errors.labels(result.error_kind or "unknown").inc()
        seconds.labels(result.bus).observe(result.seconds)

    hooks.append(count)
