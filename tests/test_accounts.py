"""Reviewer accounts: password hashes, roles, account changes, sign-in, and the `turnlens users` commands."""

from __future__ import annotations

import base64
import hashlib
import io

import pytest

from app import accounts, cli
from app.settings import Settings, SettingsError
from app.store import accounts as store_accounts

PASSWORD = "correct horse battery"


def test_hash_is_salted_scrypt_and_verifies():
    first, second = accounts.hash_password(PASSWORD), accounts.hash_password(PASSWORD)
    assert first != second  # a new salt each time: equal passwords do not give equal hashes
    scheme, n, r, p, salt, key = first.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    # the standard algorithm, recomputed here from the stored parameters
    assert base64.b64decode(key) == hashlib.scrypt(PASSWORD.encode(), salt=base64.b64decode(salt), n=16384, r=8,
                                                    p=1, dklen=32)
    assert PASSWORD not in first
    assert accounts.verify_password(PASSWORD, first) and accounts.verify_password(PASSWORD, second)
    assert not accounts.verify_password(PASSWORD + "!", first)
    assert not accounts.verify_password("", first)


@pytest.mark.parametrize("stored", [None, "", "plain", "md5$x$y", "scrypt$16384$8$1$!!$??", "scrypt$a$b$c$d$e"])
def test_a_malformed_or_missing_hash_never_verifies(stored):
    assert not accounts.verify_password(PASSWORD, stored)


def test_password_rules():
    with pytest.raises(accounts.AccountError, match="at least 8"):
        accounts.hash_password("short")
    with pytest.raises(accounts.AccountError, match="at most"):
        accounts.hash_password("x" * (accounts.MAX_PASSWORD_CHARS + 1))
    assert not accounts.verify_password("x" * (accounts.MAX_PASSWORD_CHARS + 1), accounts.hash_password(PASSWORD))


@pytest.mark.parametrize(("role", "allowed"), [
    ("reviewer", {"review"}),
    ("adjudicator", {"review", "adjudicate", "bulk_accept"}),
    ("admin", {"review", "adjudicate", "bulk_accept", "manage_accounts"}),
    (None, set()),
    ("root", set()),
])
def test_each_role_includes_the_ones_before(role, allowed):
    actions = {"review", "adjudicate", "bulk_accept", "manage_accounts"}
    assert {a for a in actions if accounts.role_allows(role, a)} == allowed
    who = accounts.Identity("x", role, True, "password")
    assert {a for a in actions if who.may(a)} == allowed
    assert not accounts.NOBODY.may("review")


def test_add_authenticate_and_history(db):
    name = accounts.add_account(db, "  alice\u200b ", role="reviewer", password=PASSWORD, actor="cli:root")
    assert name == "alice"  # normalised like every name: no invisible characters, no stray spaces
    who = accounts.authenticate(db, "alice", PASSWORD)
    assert who == accounts.Identity("alice", "reviewer", True, "password")
    assert accounts.authenticate(db, "alice", "wrong password") is None
    assert accounts.authenticate(db, "bob", PASSWORD) is None
    assert accounts.authenticate(db, "", PASSWORD) is None
    stored = store_accounts.get_account(db, "alice")
    assert stored["password_hash"].startswith("scrypt$") and PASSWORD not in stored["password_hash"]
    assert "password_hash" not in store_accounts.list_accounts(db).columns

    accounts.set_role(db, "alice", "adjudicator", actor="cli:root")
    assert accounts.refresh(db, who) == accounts.Identity("alice", "adjudicator", True, "password")
    accounts.disable_account(db, "alice", actor="admin-bob")
    assert accounts.authenticate(db, "alice", PASSWORD) is None  # the right password, but disabled
    assert accounts.refresh(db, who) == accounts.NOBODY  # a session signed in before loses its rights
    accounts.enable_account(db, "alice", actor="cli:root")
    accounts.set_password(db, "alice", "another password", actor="cli:root")
    assert accounts.authenticate(db, "alice", PASSWORD) is None
    assert accounts.authenticate(db, "alice", "another password").role == "adjudicator"

    history = store_accounts.list_account_events(db, "alice")
    assert history["event"].tolist() == ["add", "role", "disable", "enable", "password"]
    assert history["actor"].tolist() == ["cli:root", "cli:root", "admin-bob", "cli:root", "cli:root"]


def test_refused_account_changes(db):
    accounts.add_account(db, "alice", role="reviewer", password=PASSWORD, actor="t")
    with pytest.raises(accounts.AccountError, match="already an account"):
        accounts.add_account(db, "alice", role="admin", password=PASSWORD, actor="t")
    with pytest.raises(accounts.AccountError, match="looks like the existing account name 'alice'"):
        accounts.add_account(db, "\u0430lice", role="admin", password=PASSWORD, actor="t")  # Cyrillic a
    with pytest.raises(accounts.AccountError, match="unknown role"):
        accounts.add_account(db, "carol", role="root", password=PASSWORD, actor="t")
    with pytest.raises(accounts.AccountError, match="no account 'bob'"):
        accounts.set_role(db, "bob", "admin", actor="t")
    with pytest.raises(accounts.AccountError, match="empty"):
        accounts.add_account(db, "\u200b", role="reviewer", password=PASSWORD, actor="t")
    assert store_accounts.list_accounts(db)["name"].tolist() == ["alice"]  # nothing refused was written


def test_single_sign_on_identity(db):
    accounts.add_account(db, "ana@example.org", role="adjudicator", password=None, actor="t")
    assert accounts.identity_for_sso(db, "ana@example.org") == accounts.Identity("ana@example.org", "adjudicator",
                                                                                  True, "sso")
    assert accounts.identity_for_sso(db, "eve@example.org") is None  # signed in, but no account: no rights
    assert accounts.identity_for_sso(db, None) is None
    assert accounts.authenticate(db, "ana@example.org", "") is None  # an SSO-only account has no password
    accounts.disable_account(db, "ana@example.org", actor="t")
    assert accounts.identity_for_sso(db, "ana@example.org") is None


@pytest.mark.parametrize(("value", "mode"), [(None, "accounts"), ("", "accounts"), ("accounts", "accounts"),
                                             (" NONE ", "none")])
def test_auth_setting(monkeypatch, value, mode):
    if value is None:
        monkeypatch.delenv("TURNLENS_AUTH", raising=False)
    else:
        monkeypatch.setenv("TURNLENS_AUTH", value)
    assert Settings.from_env().auth == mode


@pytest.mark.parametrize("value", ["off", "0", "false", "password", "acounts"])
def test_an_unknown_auth_setting_is_an_error_not_no_accounts(monkeypatch, value):
    monkeypatch.setenv("TURNLENS_AUTH", value)
    with pytest.raises(SettingsError, match="TURNLENS_AUTH") as exc:
        Settings.from_env()
    assert exc.value.variable == "TURNLENS_AUTH"


# --- turnlens users ----------------------------------------------------------------------------------------

def users(monkeypatch, capsys, db_path, *args, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(["users", *args, "--db", str(db_path)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_users_commands(tmp_path, monkeypatch, capsys):
    path = tmp_path / "t.duckdb"
    assert users(monkeypatch, capsys, path, "list")[1].startswith("No account yet")
    code, out, _ = users(monkeypatch, capsys, path, "add", "alice", "--role", "reviewer", "--password-stdin",
                         stdin=PASSWORD + "\n")
    assert (code, out.strip()) == (0, "added alice (reviewer, password)")
    assert users(monkeypatch, capsys, path, "add", "carol@example.org", "--role", "admin", "--sso")[0] == 0
    code, out, _ = users(monkeypatch, capsys, path, "list")
    assert out.splitlines() == ["alice\treviewer\tactive\tpassword", "carol@example.org\tadmin\tactive\tsingle sign-on"]
    assert "scrypt" not in out
    assert users(monkeypatch, capsys, path, "set-role", "alice", "adjudicator")[0] == 0
    assert users(monkeypatch, capsys, path, "disable", "alice")[0] == 0
    assert users(monkeypatch, capsys, path, "list")[1].splitlines()[0] == "alice\tadjudicator\tdisabled\tpassword"

    code, _, err = users(monkeypatch, capsys, path, "add", "bob", "--role", "reviewer", "--password-stdin",
                         stdin="short\n")
    assert code == 1 and "at least 8 characters" in err
    code, _, err = users(monkeypatch, capsys, path, "add", "bob", "--role", "reviewer")  # stdin is no terminal
    assert code == 1 and "--password-stdin" in err
    code, _, err = users(monkeypatch, capsys, path, "enable", "nobody")
    assert code == 1 and "no account 'nobody'" in err
    with pytest.raises(SystemExit):  # argparse: an unknown role is a usage error
        users(monkeypatch, capsys, path, "set-role", "alice", "root")

    from app import store
    conn = store.connect(path)
    try:
        assert accounts.authenticate(conn, "alice", PASSWORD) is None  # disabled
        events = conn.execute("SELECT DISTINCT actor FROM account_events").fetchall()
        assert len(events) == 1 and events[0][0].startswith("cli:")
    finally:
        conn.close()


class BusyConnection:
    """The app's shared connection while another session's run has a statement on it: a statement on the
    connection itself fails as DuckDB's does then ("connection is busy with another call"); a cursor is a
    connection of its own and works."""

    def __init__(self, conn) -> None:
        self._conn = conn

    def cursor(self):
        return self._conn.cursor()

    def execute(self, *args, **kwargs):
        import duckdb

        raise duckdb.InvalidInputException("connection is busy with another call")

    sql = query = execute


def test_account_reads_and_writes_work_while_another_run_uses_the_shared_connection(db):
    # The app shares one connection between every session's script run. The sign-in check at the top of every
    # page ran its statements on it, and under load a page showed that error instead of its content (a browser
    # test on a loaded machine); every account statement now runs on its own cursor.
    accounts.add_account(db, "alice", role="reviewer", password=PASSWORD, actor="t")
    who = accounts.authenticate(db, "alice", PASSWORD)
    busy = BusyConnection(db)
    assert accounts.refresh(busy, who) == who
    assert accounts.authenticate(busy, "alice", PASSWORD) == who
    assert store_accounts.get_account(busy, "alice")["role"] == "reviewer"
    assert store_accounts.list_accounts(busy)["name"].tolist() == ["alice"]
    assert store_accounts.count_active_accounts(busy) == 1
    accounts.set_role(busy, "alice", "adjudicator", actor="t")
    assert store_accounts.list_account_events(busy, "alice")["event"].tolist() == ["add", "role"]
