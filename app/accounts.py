"""Reviewer accounts: who may decide, as whom, with which role.

With accounts on (TURNLENS_AUTH=accounts, the default) every decision, bulk accept, adjudication and job start is
stored under a *verified* name: one that logged in with its password (a salted scrypt hash in the database) or
through single sign-on (Streamlit's st.login, OIDC). Roles, each including the one before:

- reviewer: decides candidates in the review and audit queues, starts model jobs;
- adjudicator: also settles reviewers' disagreements and bulk-accepts;
- admin: also manages accounts (so far from the CLI: ``turnlens users``).

TURNLENS_AUTH=none is the single-user laptop: names are typed, not verified, and that one person holds every
role; the sidebar says so. No Streamlit here: the pages and the CLI both use this module.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import duckdb

from analysis.names import InvalidNameError, check_new_name, normalise_name
from app.store import accounts as store_accounts

ROLES = ("reviewer", "adjudicator", "admin")  # each includes the rights of the ones before it
# What each action needs; anything not listed needs only a verified reviewer.
ACTION_ROLES = {"adjudicate": "adjudicator", "bulk_accept": "adjudicator", "manage_accounts": "admin"}
ACTION_WORDS = {"adjudicate": "settle disagreements", "bulk_accept": "bulk-accept",
                "manage_accounts": "manage accounts"}
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024  # scrypt would hash a megabyte happily; a login form is not where that should happen

# scrypt (RFC 7914, in the standard library) with the parameters OWASP recommends as a minimum (N=2^17 needs
# 128 MiB; 2^14 with r=8 is 16 MiB and about 50 ms here, enough against guessing and cheap for a login).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _SALT_BYTES, _KEY_BYTES = 2 ** 14, 8, 1, 16, 32


class AccountError(ValueError):
    """An account change that cannot be made; the message says why, for the person who asked."""


@dataclass(frozen=True)
class Identity:
    """Who is acting in a session. name is "" when nobody is: not logged in, or no name typed."""

    name: str
    role: str | None  # None without a name
    verified: bool  # proven by a password or single sign-on; False in no-account mode
    method: str  # "password", "sso", or "none" (no-account mode)

    def may(self, action: str) -> bool:
        return bool(self.name) and role_allows(self.role, action)


NOBODY = Identity("", None, False, "none")


def role_allows(role: str | None, action: str) -> bool:
    """Whether ``role`` may do ``action`` (see ACTION_ROLES); an unknown action needs only a role."""
    if role not in ROLES:
        return False
    needed = ACTION_ROLES.get(action, "reviewer")
    return ROLES.index(role) >= ROLES.index(needed)


def refusal(identity: Identity, action: str) -> str:
    """Why ``identity`` may not do ``action``, for the page to show (as text)."""
    if not identity.name:
        return "Log in (or, in no-account mode, type your name in the sidebar) first."
    return (f"{identity.name} has the {identity.role} role; to {ACTION_WORDS.get(action, action)} needs the "
            f"{ACTION_ROLES.get(action, 'reviewer')} role. An admin can change it: turnlens users set-role "
            f"{identity.name} {ACTION_ROLES.get(action, 'reviewer')}")


# --- passwords ---------------------------------------------------------------------------------------------

def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$key`` (salt and key base64): the parameters travel with the hash, so they can be raised
    later without breaking stored accounts."""
    check_password_rules(password)
    salt = secrets.token_bytes(_SALT_BYTES)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P,
                         dklen=_KEY_BYTES)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (a hash_password string). False for no hash (an SSO-only account),
    a malformed hash or an over-long password; compared in constant time."""
    if not stored or not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key, validate=True)
        got = hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=base64.b64decode(salt, validate=True),
                             n=int(n), r=int(r), p=int(p), dklen=len(expected), maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def check_password_rules(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError(f"a password has at most {MAX_PASSWORD_CHARS} characters")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise AccountError("the password is not valid Unicode") from None


# --- accounts ----------------------------------------------------------------------------------------------

def _check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


def _existing(conn: duckdb.DuckDBPyConnection, typed: str) -> dict:
    try:
        name = normalise_name(typed, what="account name")
    except InvalidNameError as exc:
        raise AccountError(str(exc)) from None
    account = store_accounts.get_account(conn, name)
    if account is None:
        raise AccountError(f"there is no account {name!r} (turnlens users list shows them)")
    return account


def add_account(conn: duckdb.DuckDBPyConnection, typed_name: str, *, role: str, password: str | None,
                actor: str) -> str:
    """Create an account and return its stored name. password None: single sign-on only (the name is then the
    e-mail address the identity provider vouches for). A name that looks like another account's is refused."""
    _check_role(role)
    try:
        name = normalise_name(typed_name, what="account name")
        existing = store_accounts.list_accounts(conn)["name"].tolist()
        if name in existing:
            raise AccountError(f"there is already an account {name!r}")
        check_new_name(name, existing, what="account name")
    except InvalidNameError as exc:
        raise AccountError(str(exc)) from None
    hashed = hash_password(password) if password is not None else None
    store_accounts.insert_account_event(conn, name=name, event="add", role=role, password_hash=hashed,
                                        disabled=False, actor=actor)
    return name


def _change(conn, typed_name: str, event: str, actor: str, **state) -> dict:
    account = _existing(conn, typed_name)
    new = {"role": account["role"], "password_hash": account["password_hash"], "disabled": account["disabled"],
           **state}
    store_accounts.insert_account_event(conn, name=account["name"], event=event, actor=actor, **new)
    return {**account, **new}


def disable_account(conn, typed_name: str, *, actor: str) -> dict:
    """Disabled accounts cannot log in, and a session already logged in loses its rights at its next action;
    their decisions stay."""
    return _change(conn, typed_name, "disable", actor, disabled=True)


def enable_account(conn, typed_name: str, *, actor: str) -> dict:
    return _change(conn, typed_name, "enable", actor, disabled=False)


def set_role(conn, typed_name: str, role: str, *, actor: str) -> dict:
    return _change(conn, typed_name, "role", actor, role=_check_role(role))


def set_password(conn, typed_name: str, password: str | None, *, actor: str) -> dict:
    """password None removes it: the account can then log in through single sign-on only."""
    return _change(conn, typed_name, "password", actor,
                   password_hash=None if password is None else hash_password(password))


# --- identities --------------------------------------------------------------------------------------------

def authenticate(conn: duckdb.DuckDBPyConnection, typed_name: str, password: str) -> Identity | None:
    """The identity for a name and password, or None. None for an unknown or disabled account too, after the
    same hashing work, so a failed login does not tell which accounts exist."""
    try:
        name = normalise_name(typed_name, what="account name")
    except InvalidNameError:
        name = None
    account = store_accounts.get_account(conn, name) if name else None
    stored = account["password_hash"] if account else None
    if stored is None:
        verify_password(password, _DUMMY_HASH)  # equal time whether or not the account exists
        return None
    if not verify_password(password, stored) or account["disabled"]:
        return None
    return Identity(account["name"], account["role"], True, "password")


def identity_for_sso(conn: duckdb.DuckDBPyConnection, email: str | None) -> Identity | None:
    """The identity for an address the identity provider vouched for (st.user.email), or None when no enabled
    account has that name: signing in proves who someone is, an admin still decides whether they may review."""
    if not email:
        return None
    try:
        name = normalise_name(email, what="account name")
    except InvalidNameError:
        return None
    account = store_accounts.get_account(conn, name)
    if account is None or account["disabled"]:
        return None
    return Identity(account["name"], account["role"], True, "sso")


def refresh(conn: duckdb.DuckDBPyConnection, identity: Identity) -> Identity:
    """The identity as the database has it now: a role changed or an account disabled since login counts at
    once (NOBODY when disabled or gone). No-account identities are returned as they are."""
    if not identity.verified:
        return identity
    account = store_accounts.get_account(conn, identity.name)
    if account is None or account["disabled"]:
        return NOBODY
    return Identity(account["name"], account["role"], True, identity.method)


_DUMMY_HASH = ("scrypt$16384$8$1$" + _b64(b"turnlens-no-acct") + "$" + _b64(bytes(_KEY_BYTES)))
