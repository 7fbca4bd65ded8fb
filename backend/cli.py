"""Command line: ``python -m backend <command>``.

- ``run``: what ``make run`` does locally (embedded PostgreSQL when DATABASE_URL is unset,
  migrations, a first admin, then the web app).
- ``release``: the Heroku release phase (migrations, then the admin from ADMIN_EMAIL/ADMIN_PASSWORD).
- ``worker``: an arq worker (``SCHEDULER_BACKEND=arq``), the Procfile's ``worker`` process;
  ``worker --check``: exit 0 when a worker recorded its health lately.
- ``migrate``, ``serve``, ``create-user``, ``set-password``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import signal
import socket
import sys
from dataclasses import replace
from types import FrameType

import uvicorn

from backend.app import create_app
from backend.auth import repository as users
from backend.auth.passwords import MIN_PASSWORD_LENGTH, generate_password, hash_password
from backend.auth.schemas import Role
from backend.db.embedded import start_embedded_postgres
from backend.db.migrate import MigrationError, apply_migrations
from backend.db.pool import create_pool
from backend.log_config import configure_logging
from backend.scheduling.worker import check_worker_health, run_worker
from backend.settings import Settings, SettingsError, environment_with_dotenv, load_settings

LOCAL_ADMIN_EMAIL = "admin@localhost.dev"

logger = logging.getLogger("backend")


def _exit_on_signal(signum: int, _: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _terminate_on_hangup(_: int, __: FrameType | None) -> None:
    signal.raise_signal(signal.SIGTERM)


def _exit_normally_on_signals() -> None:
    """End the process through a normal exit on SIGTERM (``kill``, ``timeout``) and SIGHUP (a closed
    terminal), as on Ctrl-C, so that what is stopped at exit is stopped: the embedded PostgreSQL.

    While uvicorn serves, it takes SIGTERM itself for a graceful shutdown, then raises it again once
    done: it lands here. SIGHUP becomes SIGTERM, so that a serving app shuts down gracefully too.
    """
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _terminate_on_hangup)


def _resolve_database(settings: Settings) -> Settings:
    """Use DATABASE_URL; locally without one, start the embedded PostgreSQL under .data/ (stopped
    when this process ends, whatever stops it short of SIGKILL)."""
    if settings.database_url is not None:
        return settings
    _exit_normally_on_signals()
    url = start_embedded_postgres()
    print(f"DATABASE_URL is unset: using the embedded PostgreSQL ({url})")
    return replace(settings, database_url=url)


async def _migrate(settings: Settings) -> None:
    assert settings.database_url is not None
    applied = await apply_migrations(settings.database_url)
    print(f"migrations: {len(applied)} applied" + (f" ({', '.join(applied)})" if applied else ", up to date"))


async def _ensure_admin(settings: Settings, *, invent_locally: bool) -> None:
    """Make sure an admin exists: ADMIN_EMAIL/ADMIN_PASSWORD, else (locally only) a generated one."""
    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        if settings.admin_email and settings.admin_password:
            found = await users.get_login(pool, email=settings.admin_email)
            if found is None:
                await users.create_user(
                    pool,
                    email=settings.admin_email,
                    password_hash=await hash_password(settings.admin_password),
                    role="admin",
                )
                print(f"admin: created {users.normalize_email(settings.admin_email)} from ADMIN_EMAIL")
            return
        if await users.any_admin_exists(pool):
            if invent_locally:
                print("admin: exists (forgot its password? `.venv/bin/python -m backend set-password <email>`)")
            return
        if settings.is_production or not invent_locally:
            print("admin: none exists; set ADMIN_EMAIL and ADMIN_PASSWORD or run `python -m backend create-user`")
            return
        password = generate_password()
        await users.create_user(
            pool, email=LOCAL_ADMIN_EMAIL, password_hash=await hash_password(password), role="admin"
        )
        print(f"admin: created for local use only: {LOCAL_ADMIN_EMAIL} / {password}  (shown once)")
    finally:
        await pool.close()


class PortBusyError(Exception):
    """The address to serve on cannot be listened on; the message says which and why."""


def _listen(host: str, port: int) -> socket.socket:
    """Bind the address before anything else starts, so a busy port is the first and only message."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise PortBusyError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another, e.g. `make run PORT={port + 1}`"
        ) from None
    sock.set_inheritable(True)
    return sock


def _serve(settings: Settings, sock: socket.socket) -> None:
    host, port = sock.getsockname()[:2]
    print(f"serving on http://{host}:{port}  dashboard: http://{host}:{port}/  docs: http://{host}:{port}/docs")
    print("log in to the dashboard with your email and password (or POST /api/v1/auth/login for a token)")
    config = uvicorn.Config(
        create_app(settings),
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_config=None,  # backend.log_config formats uvicorn's lines like the app's
        log_level=settings.log_level.lower(),
        # on SIGTERM open requests get 3 s, runs SHUTDOWN_GRACE_SECONDS (15), their logs 2 s: ~20 s of Heroku's 30 s
        timeout_graceful_shutdown=3,
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C once it has shut down
        uvicorn.Server(config).run(sockets=[sock])


async def _set_user(settings: Settings, email: str, role: Role | None, password: str) -> None:
    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        password_hash = await hash_password(password)
        if role is None:
            if await users.set_password_hash(pool, email=email, password_hash=password_hash) is None:
                raise SystemExit(f"no user with email {users.normalize_email(email)}")
            print(f"password set for {users.normalize_email(email)}")
        else:
            try:
                user = await users.create_user(pool, email=email, password_hash=password_hash, role=role)
            except users.UserExistsError:
                raise SystemExit(f"a user with email {users.normalize_email(email)} exists already") from None
            print(f"created {user.role} {user.email} (id {user.id})")
    finally:
        await pool.close()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise SystemExit("the passwords differ")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise SystemExit(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    return password


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="local: database, migrations, first admin, then serve")
    serve = commands.add_parser("serve", help="serve the web app (no migrations)")
    for command in (run, serve):
        command.add_argument("--host", default="127.0.0.1")
        command.add_argument("--port", type=int, default=8000)
    worker = commands.add_parser("worker", help="run an arq worker (SCHEDULER_BACKEND=arq)")
    worker.add_argument("--check", action="store_true", help="exit 0 when a worker recorded its health lately")
    commands.add_parser("migrate", help="apply pending migrations")
    commands.add_parser("release", help="Heroku release phase: migrate, then ensure the admin")
    create = commands.add_parser("create-user", help="create a user")
    create.add_argument("email")
    create.add_argument("--role", choices=["admin", "viewer"], default="viewer")
    create.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    set_password = commands.add_parser("set-password", help="set a user's password")
    set_password.add_argument("email")
    set_password.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # lines reach logs at once
    try:
        settings = load_settings(environment_with_dotenv())
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(level=settings.log_level, log_format=settings.log_format)
    try:
        sock = _listen(args.host, args.port) if args.command in ("run", "serve") else None
    except PortBusyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        settings = _resolve_database(settings)
        if args.command in ("run", "migrate", "release"):
            asyncio.run(_migrate(settings))
        if args.command in ("run", "release"):
            asyncio.run(_ensure_admin(settings, invent_locally=args.command == "run"))
        if sock is not None:
            _serve(settings, sock)
        elif args.command == "worker":
            if args.check:
                return check_worker_health(settings)
            run_worker(settings)
        elif args.command == "create-user":
            asyncio.run(_set_user(settings, args.email, args.role, _read_password(args.password_stdin)))
        elif args.command == "set-password":
            asyncio.run(_set_user(settings, args.email, None, _read_password(args.password_stdin)))
    except MigrationError as exc:
        print(f"migration error: {exc}", file=sys.stderr)
        return 1
    return 0
