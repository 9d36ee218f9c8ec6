"""Role-gated actions on a page: whether the session's identity may act, and if not, why (as text)."""

from __future__ import annotations

import streamlit as st

from app import accounts
from app.page import Page


def allowed(page: Page, action: str, *, where=st) -> bool:
    """Whether ``page.identity`` may do ``action`` (app.accounts.ACTION_ROLES); if not, say why in ``where`` (a
    container) and return False. Names are shown with st.text: an account or typed name is not Markdown."""
    if page.identity.may(action):
        return True
    if not page.identity.name:
        if page.settings.auth == "none":
            where.warning("Enter your name as Reviewer in the sidebar: decisions are stored with it.")
        else:
            where.warning("Sign in to do this.")
    else:
        where.warning(f"Your role does not allow this: it needs the {accounts.ACTION_ROLES.get(action, 'reviewer')} "
                      "role.")
        where.text(accounts.refusal(page.identity, action))
    return False
