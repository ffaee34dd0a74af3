"""`callroute user ...` and `callroute token ...`: web accounts from the shell.

Hooked into agi/cli.py's parser; runs with the same exit statuses (0 ok, 2 invalid
input, 1 store unreachable). Secrets are read from stdin, never from argv (argv is
visible to every local user in /proc), and printed only once, on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from agi.cli_commands import actor
from agi.config import ConfigError, load
from agi.store import AdminStore, StoreError

GROUPS = ("user", "token")
EXIT_OK, EXIT_STORE, EXIT_INVALID = 0, 1, 2


def add_parsers(top: argparse._SubParsersAction) -> None:
    user = top.add_parser("user", help="web accounts (callroute-web)").add_subparsers(
        dest="action", required=True)
    add = user.add_parser("add", help="create an account; prints a generated password once "
                                      "unless --password-stdin")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=("admin", "user"))
    add.add_argument("--ext", action="append", default=[], metavar="EXT",
                     help="an extension a 'user' may manage (repeatable)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of stdin")
    user.add_parser("remove", help="delete an account and revoke its tokens and sessions") \
        .add_argument("name")
    user.add_parser("list", help="list accounts").add_argument("--json", action="store_true")
    passwd = user.add_parser("passwd", help="set a password (revokes tokens and sessions)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", required=True)

    token = top.add_parser("token", help="API bearer tokens").add_subparsers(
        dest="action", required=True)
    create = token.add_parser("create", help="print a new token for NAME, once")
    create.add_argument("name")
    create.add_argument("--expires", type=float, default=12.0, metavar="HOURS",
                        help="lifetime in hours (default 12)")
    revoke = token.add_parser("revoke", help="revoke one token (read from stdin) or, with "
                                             "--all, every token and session of NAME")
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("--token-stdin", action="store_true",
                        help="read the token to revoke from stdin")
    target.add_argument("--all", metavar="NAME", help="revoke everything NAME holds")


def _stdin_secret(what: str) -> str:
    line = sys.stdin.readline()
    secret = line.rstrip("\r\n")
    if not secret:
        from agi.accounts import AccountError

        raise AccountError("required", what, f"no {what} on stdin")
    return secret


def _user_add(args: argparse.Namespace, accounts) -> None:
    from agi.accounts import check_role, check_username, generate_password

    check_username(args.name)
    check_role(args.role, args.ext)  # before reading a password: fail fast, one line
    password = _stdin_secret("password") if args.password_stdin else generate_password()
    user = accounts.add_user(args.name, args.role, args.ext, password, actor=actor())
    exts = f" for extension(s) {', '.join(user.extensions)}" if user.extensions else ""
    print(f"user {user.name} added ({user.role}{exts})")
    if not args.password_stdin:
        print(f"password: {password}")
        print("(shown once: it is stored only as an argon2id hash)")


def _user_remove(args: argparse.Namespace, accounts) -> None:
    accounts.remove_user(args.name, actor=actor())
    print(f"user {args.name} removed; its tokens and sessions are revoked")


def _user_list(args: argparse.Namespace, accounts) -> None:
    users = accounts.list_users()
    if args.json:
        print(json.dumps([user.to_json() for user in users], indent=2))
        return
    for user in users:
        exts = ", ".join(user.extensions) if user.extensions else "-"
        print(f"{user.name}\t{user.role}\t{exts}")


def _user_passwd(args: argparse.Namespace, accounts) -> None:
    accounts.set_password(args.name, _stdin_secret("password"), actor=actor())
    print(f"password of {args.name} changed; its tokens and sessions are revoked")


def _token_create(args: argparse.Namespace, accounts) -> None:
    token, expires = accounts.create_token(args.name, args.expires)
    print(token)
    print(f"expires {expires.isoformat().replace('+00:00', 'Z')}", file=sys.stderr)


def _token_revoke(args: argparse.Namespace, accounts) -> None:
    from agi.accounts import AccountError

    if args.all:
        count = accounts.revoke_all(args.all)
        print(f"{count} token(s) and session(s) of {args.all} revoked")
    elif accounts.revoke_token(_stdin_secret("token")):
        print("token revoked")
    else:
        raise AccountError("not_found", "token", "no such token (expired or revoked already)")


COMMANDS: dict[tuple[str, str], Callable] = {
    ("user", "add"): _user_add,
    ("user", "remove"): _user_remove,
    ("user", "list"): _user_list,
    ("user", "passwd"): _user_passwd,
    ("token", "create"): _token_create,
    ("token", "revoke"): _token_revoke,
}


def run(args: argparse.Namespace) -> int:
    """Run a parsed `user`/`token` command; the exit status."""
    from agi.accounts import AccountError, Accounts

    try:
        import argon2  # noqa: F401  (the web extra)
    except ImportError:
        print("callroute: error: accounts need the web extra: pip install 'callroute[web]'",
              file=sys.stderr)
        return EXIT_INVALID
    try:
        config = load()
        COMMANDS[(args.group, args.action)](args, Accounts(AdminStore(config)))
    except (AccountError, ConfigError) as exc:
        print(f"callroute: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except StoreError as exc:
        print(f"callroute: error: {exc}", file=sys.stderr)
        return EXIT_STORE
    return EXIT_OK
