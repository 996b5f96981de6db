"""``dockyard-registry user ...`` and ``dockyard-registry token ...``: accounts and robot tokens
in the index (registered by registry/__main__.py's COMMAND_MODULES).

    user add NAME [--password-stdin] [--admin] [--group G ...]
    user passwd NAME [--password-stdin]
    user set NAME [--admin | --no-admin] [--group G ...]
    user rm NAME
    user ls
    user import-htpasswd FILE
    token create NAME --scope 'PATTERN:ACTIONS' [--scope ...] [--expires 90d]
    token ls
    token revoke NAME

Passwords come from stdin (``--password-stdin``, first line) or an interactive prompt; never
from an argument (it would show in ``ps`` and shell history). A robot's secret is printed once.
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from .common import add_config_options, config_from_args
from ..config import ConfigError, parse_duration
from ..index import Index
from ..index.auth_queries import AuthQueries
from ..auth.passwords import (PasswordError, check_name, hash_password, new_robot_secret, parse_htpasswd,
                        robot_secret_digest)
from ..auth.rules import ACTIONS, check_pattern


def _run(args: argparse.Namespace, job: Callable[[AuthQueries], Awaitable[int]]) -> int:
    config = config_from_args(args)

    async def go() -> int:
        index = Index(config.database_url)
        try:
            if config.auto_migrate:
                await index.migrate()
            return await job(AuthQueries(index.db))
        finally:
            await index.close()

    return asyncio.run(go())


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise PasswordError("no terminal to prompt on: use --password-stdin")
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise PasswordError("the passwords differ")
    return password


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def user_add(args: argparse.Namespace) -> int:
    name = check_name(args.name)
    hashed = hash_password(_read_password(args))

    async def job(q: AuthQueries) -> int:
        if not await q.add_user(name, hashed, args.admin, args.group or []):
            return _fail(f"user {name!r} exists (use 'user passwd' or 'user set')")
        print(f"added user {name}" + (" (admin)" if args.admin else ""))
        return 0
    return _run(args, job)


def user_passwd(args: argparse.Namespace) -> int:
    hashed = hash_password(_read_password(args))

    async def job(q: AuthQueries) -> int:
        if not await q.set_password(args.name, hashed):
            return _fail(f"no user {args.name!r}")
        print(f"password of {args.name} changed")
        return 0
    return _run(args, job)


def user_set(args: argparse.Namespace) -> int:
    async def job(q: AuthQueries) -> int:
        if not await q.update_user(args.name, args.admin, args.group):
            return _fail(f"no user {args.name!r}")
        print(f"updated user {args.name}")
        return 0
    return _run(args, job)


def user_rm(args: argparse.Namespace) -> int:
    async def job(q: AuthQueries) -> int:
        if not await q.remove_user(args.name):
            return _fail(f"no user {args.name!r}")
        print(f"removed user {args.name}")
        return 0
    return _run(args, job)


def user_ls(args: argparse.Namespace) -> int:
    async def job(q: AuthQueries) -> int:
        for u in await q.list_users():
            print(f"{u.name}\t{'admin' if u.is_admin else '-'}\t{','.join(u.groups) or '-'}")
        return 0
    return _run(args, job)


def user_import(args: argparse.Namespace) -> int:
    try:
        with open(args.file, encoding="utf-8") as f:
            users = parse_htpasswd(f.read(), args.file)
    except OSError as e:
        return _fail(f"cannot read {args.file}: {e.strerror}")

    async def job(q: AuthQueries) -> int:
        for name, hashed in users.items():
            await q.upsert_user_hash(name, hashed)
        print(f"imported {len(users)} user(s) from {args.file}")
        return 0
    return _run(args, job)


def parse_scope_arg(text: str) -> dict[str, Any]:
    pattern, sep, actions = text.rpartition(":")
    acts = [a for a in actions.split(",") if a]
    if not sep or not pattern or not acts or any(a not in ACTIONS for a in acts):
        raise ConfigError(f"--scope {text!r}: expected PATTERN:ACTIONS such as 'team-a/*:pull,push'")
    check_pattern(pattern, "--scope")
    if "{user}" in pattern:
        raise ConfigError("--scope: {user} has no meaning for a robot")
    return {"pattern": pattern, "actions": acts}


def token_create(args: argparse.Namespace) -> int:
    name = check_name(args.name, "token name")
    scopes = [parse_scope_arg(s) for s in args.scope]
    expires = time.time() + parse_duration(args.expires, "--expires") if args.expires else None
    secret = new_robot_secret()

    async def job(q: AuthQueries) -> int:
        if not await q.add_robot(name, robot_secret_digest(secret), scopes, expires):
            return _fail(f"token {name!r} exists (revoke it, or choose another name)")
        print(f"created robot token {name}; sign in as user 'robot${name}' with this secret (shown once):",
              file=sys.stderr)
        print(secret)
        return 0
    return _run(args, job)


def _when(t: float | None) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if t else "-"


def token_ls(args: argparse.Namespace) -> int:
    async def job(q: AuthQueries) -> int:
        now = time.time()
        for r in await q.list_robots():
            state = ("revoked" if r.revoked_at else "expired" if r.expires_at and r.expires_at <= now else "active")
            scopes = " ".join(f"{s.get('pattern')}:{','.join(s.get('actions') or [])}" for s in r.scopes)
            print(f"robot${r.name}\t{state}\tcreated {_when(r.created_at)}\texpires {_when(r.expires_at)}\t{scopes}")
        return 0
    return _run(args, job)


def token_revoke(args: argparse.Namespace) -> int:
    name = args.name.removeprefix("robot$")

    async def job(q: AuthQueries) -> int:
        if not await q.revoke_robot(name):
            return _fail(f"no active token {name!r}")
        print(f"revoked robot${name}")
        return 0
    return _run(args, job)


def _guard(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except PasswordError as e:
            return _fail(str(e))
    return run


def register(sub: argparse._SubParsersAction) -> None:
    users = sub.add_parser("user", help="registry accounts (bcrypt passwords in the index)")
    usub = users.add_subparsers(dest="user_command", metavar="ACTION", required=True)

    def cmd(parent, name: str, fn, help_: str, *, name_arg: bool = True, password: bool = False):
        p = parent.add_parser(name, help=help_)
        add_config_options(p)
        if name_arg:
            p.add_argument("name")
        if password:
            p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        p.set_defaults(func=_guard(fn))
        return p

    p = cmd(usub, "add", user_add, "add a user", password=True)
    p.add_argument("--admin", action="store_true", help="may do everything")
    p.add_argument("--group", action="append", metavar="G", help="member of group G (repeatable)")
    cmd(usub, "passwd", user_passwd, "change a user's password", password=True)
    p = cmd(usub, "set", user_set, "change a user's admin flag or groups")
    p.add_argument("--admin", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--group", action="append", metavar="G", help="the user's groups (replaces them)")
    cmd(usub, "rm", user_rm, "remove a user")
    cmd(usub, "ls", user_ls, "list users", name_arg=False)
    p = cmd(usub, "import-htpasswd", user_import, "import bcrypt users from an htpasswd file", name_arg=False)
    p.add_argument("file")

    tokens = sub.add_parser("token", help="robot tokens for CI (scoped, revocable)")
    tsub = tokens.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    p = cmd(tsub, "create", token_create, "create a robot token and print its secret once")
    p.add_argument("--scope", action="append", required=True, metavar="PATTERN:ACTIONS",
                   help="e.g. 'team-a/*:pull,push' (repeatable)")
    p.add_argument("--expires", metavar="DURATION", help="e.g. 90d (default: never)")
    cmd(tsub, "ls", token_ls, "list robot tokens", name_arg=False)
    cmd(tsub, "revoke", token_revoke, "revoke a robot token")
