"""`turnlens users ...`: reviewer accounts, for the admin of a shared server (see docs/accounts.md).

    turnlens users add NAME --role reviewer|adjudicator|admin [--sso] [--password-stdin]
    turnlens users list
    turnlens users disable NAME / enable NAME
    turnlens users set-role NAME ROLE
    turnlens users set-password NAME [--password-stdin] [--sso-only]

A password is asked twice on the terminal (never an argument: it would land in the shell history and in `ps`), or
read as the first line of standard input with --password-stdin (for scripts). Every change is appended to the
account's history with who made it (``cli:<os user>``). Exit codes: 0 done, 1 refused (the message says why),
2 usage, 3 the database is held by the running app (stop it, or change accounts while it is stopped).
"""

from __future__ import annotations

import argparse
import getpass
import sys

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def add_parser(sub: argparse._SubParsersAction, db_arg) -> None:
    from app.accounts import ROLES

    p = sub.add_parser("users", help="reviewer accounts: add, list, disable, enable, set-role, set-password")
    usub = p.add_subparsers(dest="users_action", required=True)
    u = usub.add_parser("add", help="create an account (asks for its password, unless --sso)")
    u.add_argument("name")
    u.add_argument("--role", choices=ROLES, required=True)
    u.add_argument("--sso", action="store_true",
                   help="single sign-on only, no password: NAME is the e-mail address the identity provider gives")
    u.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    db_arg(u)
    u = usub.add_parser("list", help="every account: role, status, how it signs in")
    db_arg(u)
    for action, text in (("disable", "stop an account signing in (its decisions stay)"),
                         ("enable", "let a disabled account sign in again")):
        u = usub.add_parser(action, help=text)
        u.add_argument("name")
        db_arg(u)
    u = usub.add_parser("set-role", help="change an account's role")
    u.add_argument("name")
    u.add_argument("role", choices=ROLES)
    db_arg(u)
    u = usub.add_parser("set-password", help="change an account's password (asks for it)")
    u.add_argument("name")
    u.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    u.add_argument("--sso-only", action="store_true", help="remove the password: single sign-on only")
    db_arg(u)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ValueError("no terminal to ask for the password on: pass --password-stdin and pipe it in")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def run(args: argparse.Namespace, open_db) -> int:
    """open_db(args) -> (connection or None, path, exit code), the CLI's shared opener."""
    from app import accounts
    from app.store import accounts as store_accounts

    conn, _, code = open_db(args)
    if conn is None:
        return code
    actor = f"cli:{getpass.getuser()}"
    action = args.users_action
    try:
        if action == "list":
            table = store_accounts.list_accounts(conn)
            if table.empty:
                print("No account yet: turnlens users add NAME --role admin")
            for row in table.itertuples():
                status = "disabled" if row.disabled else "active"
                how = "password" if row.has_password else "single sign-on"
                print(f"{row.name}\t{row.role}\t{status}\t{how}")
            return EXIT_OK
        if action == "add":
            password = None if args.sso else _read_password(args)
            name = accounts.add_account(conn, args.name, role=args.role, password=password, actor=actor)
            print(f"added {name} ({args.role}, {'single sign-on' if args.sso else 'password'})")
        elif action == "disable":
            print(f"disabled {accounts.disable_account(conn, args.name, actor=actor)['name']}")
        elif action == "enable":
            print(f"enabled {accounts.enable_account(conn, args.name, actor=actor)['name']}")
        elif action == "set-role":
            print(f"{accounts.set_role(conn, args.name, args.role, actor=actor)['name']} is now {args.role}")
        elif action == "set-password":
            password = None if args.sso_only else _read_password(args)
            done = accounts.set_password(conn, args.name, password, actor=actor)
            print(f"{done['name']}: {'single sign-on only' if password is None else 'password changed'}")
    except (accounts.AccountError, ValueError) as exc:
        print(f"turnlens users {action}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        conn.close()
    return EXIT_OK
