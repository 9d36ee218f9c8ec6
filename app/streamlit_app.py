"""turnlens entry point: page config, the shared sidebar (reviewer, dataset), navigation."""

from __future__ import annotations

import hmac
import os
import sys
from pathlib import Path

# `streamlit run app/streamlit_app.py` puts app/ on sys.path, not the repo root: make the packages importable
# from a plain checkout as well as from an installed wheel.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402

from analysis.names import InvalidNameError, check_new_name, normalise_name  # noqa: E402
from app import __version__, accounts, resources, state, store  # noqa: E402
from app.settings import Settings, SettingsError  # noqa: E402

st.set_page_config(page_title="turnlens", page_icon=str(_ROOT / "app" / "static" / "favicon.png"), layout="wide")
try:
    settings = Settings.from_env()
except SettingsError as exc:  # under `python -m app.serve` the server would not have started; here, say it
    st.error(f"A setting is not valid: {exc.variable}")
    st.text(str(exc))  # holds the value as it was set: text, not Markdown
    st.stop()
# numba reads NUMBA_CACHE_DIR when umap is first imported (by the warm-up below, or a page).
os.environ.setdefault("NUMBA_CACHE_DIR", str(settings.numba_cache))
if settings.umap_warmup:
    resources.umap_jobs().warm_up()  # once per server process, in the background: the first UMAP fit compiles


def _shared_password() -> str | None:
    """The optional shared password for demo deployments: `password` in .streamlit/secrets.toml."""
    try:
        value = st.secrets.get("password")
    except (FileNotFoundError, KeyError):  # no secrets file: no password
        return None
    return str(value) if value else None


password = _shared_password()
if password and not st.session_state.get("authenticated"):
    st.title("turnlens")
    typed = st.text_input("Password", type="password", key="password_input")
    if st.button("Enter", type="primary") or typed:
        if hmac.compare_digest(typed.encode(), password.encode()):
            st.session_state["authenticated"] = True
            st.rerun()
        st.error("Wrong password.")
    st.stop()

try:
    conn = resources.get_connection(str(settings.db_path))
except (store.StoreLockedError, resources.DatabaseUnavailableError) as exc:
    st.error("The database cannot be opened.")
    st.text(str(exc))
    st.stop()


def _accepted_reviewer(typed: str) -> str | None:
    """The reviewer name to record for what was typed, or None (after saying why, as text) if it cannot be used.
    A name is an identity: it is normalised, and one that looks like another stored name without being it is
    refused, so nobody can pass for a second reviewer (``alice`` + a zero-width space is ``alice``)."""
    if not typed.strip():
        return None
    try:
        name = normalise_name(typed, what="reviewer name")
        existing = store.list_reviewers(conn)  # not cached: a name stored a moment ago must count at once
        # An exact stored name is its owner's, even if a look-alike was stored before names were checked.
        return name if name in existing else check_new_name(name, existing)
    except InvalidNameError as exc:
        st.error("This reviewer name cannot be used.")
        reason = str(exc)
        st.text(reason[:1].upper() + reason[1:] + ". Until it is changed, this session has no reviewer name.")
        return None


def _sso_configured() -> bool:
    """Single sign-on is on when .streamlit/secrets.toml has an [auth] section (Streamlit's st.login, OIDC)."""
    try:
        return "auth" in st.secrets
    except (FileNotFoundError, KeyError):
        return False


def _sso_signed_in() -> bool:
    """Whether the identity provider vouched for this browser (its cookie): st.user.is_logged_in, read as a key
    because st.user has no such attribute where no sign-in ever happened (AppTest)."""
    return _sso_configured() and bool(st.user.get("is_logged_in", False))


def _login_form() -> None:
    """The sign-in page of accounts mode: name and password, and single sign-on where configured. Stops the run."""
    st.title("turnlens")
    sso = _sso_configured()
    if _sso_signed_in():
        # The identity provider vouched for this address, but no enabled account has it as its name.
        st.error("Signed in, but there is no enabled turnlens account for this address.")
        st.text(f"{st.user.get('email') or '(no e-mail in the identity token)'}: ask an admin to run "
                "turnlens users add <e-mail> --sso --role reviewer")
        st.button("Sign out", on_click=st.logout, key="sso_logout")
        st.stop()
    if accounts.store_accounts.count_active_accounts(conn) == 0 and not sso:
        st.warning("Accounts mode (TURNLENS_AUTH=accounts) is on, but there is no account yet.")
        st.text("Create one:  turnlens users add <name> --role admin\n"
                "or, on a single-user laptop, start with TURNLENS_AUTH=none (names are then not verified).")
        st.stop()
    with st.form("login"):
        name = st.text_input("Name", key="login_name", autocomplete="username")
        password = st.text_input("Password", type="password", key="login_password", autocomplete="current-password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        identity = accounts.authenticate(conn, name, password)
        if identity is None:
            st.error("Wrong name or password, or the account is disabled.")
        else:
            st.session_state[state.IDENTITY] = identity
            st.rerun()
    if sso:
        st.button("Log in with single sign-on", on_click=st.login, key="sso_login")
    st.stop()


def _identity() -> accounts.Identity:
    """Who acts in this session, per the sign-in mode (see app.accounts)."""
    if settings.auth == "none":
        with st.sidebar:
            if state.REVIEWER_BOX not in st.session_state:
                # A session (or a test) may name its reviewer before the box exists: the box starts with that name,
                # which is then checked like a typed one.
                st.session_state[state.REVIEWER_BOX] = st.session_state.get(state.REVIEWER) or ""
            typed = st.text_input("Reviewer", key=state.REVIEWER_BOX, placeholder="your name",
                                  help="Stored with every decision and import you make.")
            name = _accepted_reviewer(typed)
            st.caption("No-account mode (TURNLENS_AUTH=none): names are not verified; whoever types a name holds "
                       "every role. For a single-user laptop.")
        return accounts.Identity(name, "admin", False, "none") if name else accounts.NOBODY
    if settings.read_only:
        return accounts.NOBODY  # nothing can be written: nobody needs to sign in to look
    identity = st.session_state.get(state.IDENTITY)
    if identity is None and _sso_signed_in():
        identity = accounts.identity_for_sso(conn, st.user.get("email"))
    if identity is not None:
        identity = accounts.refresh(conn, identity)  # a role changed or an account disabled counts at once
    if identity is None or not identity.name:
        st.session_state.pop(state.IDENTITY, None)
        _login_form()
    st.session_state[state.IDENTITY] = identity
    return identity


def _log_out() -> None:
    st.session_state.pop(state.IDENTITY, None)
    if _sso_signed_in():
        st.logout()


with st.sidebar:
    st.markdown("### turnlens")
identity = _identity()
st.session_state[state.REVIEWER] = identity.name or None

with st.sidebar:
    if identity.verified:
        st.text(f"{identity.name} · {identity.role}")
        st.button("Log out", on_click=_log_out, key="logout")
    elif settings.read_only and settings.auth != "none":
        st.caption("Read-only: no sign-in needed.")
    names = resources.datasets(conn, str(settings.db_path))
    if names:
        wanted = st.query_params.get("dataset")
        if state.DATASET not in st.session_state or st.session_state[state.DATASET] not in names:
            # A dataset named in the URL wins, if it exists; then the default one (the bundled sample that
            # `make run` loads, or TURNLENS_DATASET); otherwise the first.
            fallback = settings.default_dataset if settings.default_dataset in names else names[0]
            st.session_state[state.DATASET] = wanted if wanted in names else fallback
        st.selectbox("Dataset", names, key=state.DATASET)
        st.query_params["dataset"] = st.session_state[state.DATASET]
    else:
        st.session_state[state.DATASET] = None
        st.info("No data yet: import a log on the Import page.")
    st.caption(f"Database: {settings.db_path.name} · v{__version__}"
               + (" · read-only" if settings.read_only else ""))

# In sections, as a reviewer thinks of the work: deciding, the models that propose, what the data shows, data.
pages = {
    "Review": [
        st.Page("app_pages/overview.py", title="Overview", icon=":material/monitoring:", default=True),
        st.Page("app_pages/review.py", title="Review", icon=":material/rule:"),
        st.Page("app_pages/agreement.py", title="Agreement", icon=":material/groups:"),
        st.Page("app_pages/bulk.py", title="Bulk accept", icon=":material/done_all:"),
        st.Page("app_pages/calibration.py", title="Calibration", icon=":material/tune:"),
    ],
    "Models": [
        st.Page("app_pages/models.py", title="Models", icon=":material/model_training:"),
        st.Page("app_pages/compare_runs.py", title="Compare runs", icon=":material/compare_arrows:"),
        st.Page("app_pages/failures.py", title="Failure analysis", icon=":material/account_tree:"),
        st.Page("app_pages/labels.py", title="Label generation", icon=":material/label:"),
        st.Page("app_pages/coordination.py", title="Coordination chunking", icon=":material/format_list_bulleted:"),
        st.Page("app_pages/rescoring.py", title="Rare-word rescoring", icon=":material/record_voice_over:"),
        st.Page("app_pages/skills.py", title="Skill routing", icon=":material/alt_route:"),
        st.Page("app_pages/rewrites.py", title="Query rewrites", icon=":material/edit_note:"),
    ],
    "Analysis": [
        st.Page("app_pages/disparity.py", title="Disparity", icon=":material/map:"),
        st.Page("app_pages/dialogues.py", title="Dialogues", icon=":material/forum:"),
    ],
    "Data": [
        st.Page("app_pages/import_logs.py", title="Import", icon=":material/upload_file:"),
        st.Page("app_pages/export.py", title="Export", icon=":material/download:"),
    ],
}
# expanded: every page listed (collapsed, the sidebar hides all but the first ten behind "View more")
st.navigation(pages, expanded=True).run()
