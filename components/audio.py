"""A turn's audio in the app: located under the audio root (analysis.audio_clips) and served offline by the app
itself through Streamlit's media endpoint, the one st.audio uses, which answers HTTP Range requests (206) so a
player can seek; http(s) URLs are passed through. Synthetic audio is labelled as such; audio that cannot play
shows a short notice instead of a player, never an error."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit import runtime

from analysis.audio_clips import AudioClip, locate_audio
from components.markdown import escape_markdown


def turn_clip(turn: dict, root: str | Path | None) -> AudioClip | None:
    """The turn's audio (None when it has none): see analysis.audio_clips.locate_audio."""
    return locate_audio(turn.get("audio"), turn.get("audio_source"), root)


def media_url(path: Path, mime: str, key: str) -> str:
    """The URL at which the app serves the file at ``path`` (already resolved under the audio root) to this session:
    the file is registered with Streamlit's media file manager as st.audio registers its files (kept while a run of
    this session shows it, then dropped), under ``key``, unique on the page. "" outside a Streamlit runtime."""
    if not runtime.exists():
        return ""
    url = runtime.get_instance().media_file_mgr.add(str(path), mime, f"turnlens-audio.{key}")
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}{url}" if base else url


def clip_src(clip: AudioClip, key: str) -> str | None:
    """What a player's src is for a playable clip: the app's media URL of its file, or its http(s) URL; None for a
    clip with a notice."""
    if clip.path is not None and clip.mime is not None:
        return media_url(clip.path, clip.mime, key)
    return clip.url


def render_audio(turn: dict, *, root: str | Path | None) -> None:
    """The turn's player (st.audio), under its label; or the notice saying why it cannot play. Nothing for a turn
    without audio. The label and notice are fixed text (analysis.audio_clips), shown as text all the same."""
    clip = turn_clip(turn, root)
    if clip is None:
        return
    if clip.label:
        st.caption(escape_markdown(clip.label))
    if clip.notice:
        st.caption(escape_markdown(clip.notice))
    elif clip.path is not None:
        st.audio(clip.path, format=clip.mime)
    elif clip.url is not None:
        st.audio(clip.url, format=clip.mime or "audio/wav")
