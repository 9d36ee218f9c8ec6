"""Import: upload dialogue logs; validated all or nothing, exactly like `turnlens ingest`. Then label candidates for the
stored turns, in turnlens's format or a labelling tool's, exactly like `turnlens candidates import --format`."""

import tempfile
from pathlib import Path

import streamlit as st

from analysis.interop import CANDIDATE_FORMATS, read_candidate_file
from analysis.logs import SUFFIXES, LogFormatError, file_kind, format_problems
from app import resources, state, store
from app.ingest import AudioFilesError, ingest_files
from app.settings import Settings
from app.store.candidates import get_turn_texts

settings = Settings.from_env()
conn = resources.get_connection(str(settings.db_path))
st.title("Import dialogue logs")
st.markdown("One record per turn in the turnlens log format, version 1 (see `docs/log-format.md`). "
            "If any record is invalid, nothing is written and every problem is listed.")

if settings.read_only:
    st.info("This app runs read-only (TURNLENS_READ_ONLY): importing is switched off.")
else:
    with st.form("import", clear_on_submit=False):
        files = st.file_uploader("Log files", accept_multiple_files=True,
                                 help="Accepted: " + ", ".join(SUFFIXES))
        # Empty on purpose: a real log must not land in whatever dataset (a demo) happens to be selected.
        dataset = st.text_input("Dataset", value="", key="import_dataset", placeholder="e.g. pilot-2026-12",
                                help="The dataset these turns belong to: a new name, or an existing one to add to.")
        allow_missing = st.checkbox(
            "Accept turns whose audio file is missing", value=False, key="import_allow_missing_audio",
            help="Audio paths are relative to the audio root (TURNLENS_AUDIO_ROOT, else data/audio). Off: a turn "
                 "naming a file that is not there stops the import. A path leading outside the root is refused "
                 "either way.")
        submitted = st.form_submit_button("Import", type="primary")
    if submitted:
        reviewer = (st.session_state.get(state.REVIEWER) or "").strip() or None
        if not files:
            st.error("Choose at least one file.")
        elif not dataset.strip():
            st.error("The dataset name must not be empty.")
        else:
            bad = [f.name for f in files if file_kind(f.name) is None]
            if bad:
                st.error("Unsupported file type. Accepted: " + ", ".join(SUFFIXES))
                st.text("\n".join(bad))  # file names are user text: shown as text
            else:
                bar = st.progress(0.0, text="Reading and checking…")

                def progress(stage: str, done: int, total: int | None) -> None:
                    label = {"read": "Reading and checking", "wer": "Word error counts", "write": "Writing"}
                    share = {"read": 0.0, "wer": 0.3, "write": 0.9}[stage]
                    frac = share + (0.6 if stage == "wer" else 0.1) * (done / total if total else 0)
                    bar.progress(min(frac, 1.0), text=f"{label[stage]}: {done:,} turns")

                with tempfile.TemporaryDirectory() as tmp:
                    paths = []
                    for i, f in enumerate(files):
                        # Keep the original suffix: it says how to read the file.
                        path = Path(tmp) / f"{i}{''.join(Path(f.name).suffixes[-2:])}"
                        path.write_bytes(f.getvalue())
                        paths.append(path)
                    try:
                        result, unknown = ingest_files(conn, paths, dataset=dataset, imported_by=reviewer,
                                                       source_names=[f.name for f in files], progress=progress,
                                                       audio_root=settings.audio_root,
                                                       allow_missing_audio=allow_missing)
                    except AudioFilesError as exc:
                        bar.empty()
                        st.error(f"Nothing was imported: {exc.total:,} problem(s) with audio files. Paths are "
                                 "relative to the audio root below; one leading outside it is never accepted"
                                 + ("." if allow_missing else ", and a missing file only when you tick "
                                                               "'Accept turns whose audio file is missing'."))
                        st.code(format_problems(exc.problems) + f"\naudio root: {exc.root}", language=None)
                    except LogFormatError as exc:
                        bar.empty()
                        st.error(f"Nothing was imported: {exc.total:,} problem(s).")
                        st.code(format_problems(exc.problems), language=None)
                    except store.IngestConflictError as exc:
                        bar.empty()
                        st.error("Nothing was imported: the files contradict turns already stored.")
                        st.code(str(exc), language=None)
                    except ValueError as exc:  # a setting out of range (e.g. TURNLENS_MAX_LINE_BYTES)
                        bar.empty()
                        st.error("Nothing was imported.")
                        st.code(str(exc), language=None)
                    else:
                        bar.progress(1.0, text="Done")
                        resources.clear_reads()
                        st.success(f"{result.rows_read:,} turns read, {result.rows_added:,} added, "
                                   f"{result.rows_already_present:,} already present.")
                        if unknown:
                            st.warning("Some fields are not part of the log format; they were kept in the "
                                       "extras column:")
                            st.text(", ".join(f"{k} ({v:,} rows)" for k, v in sorted(unknown.items())))

st.subheader("Import history")
st.dataframe(store.list_imports(conn), hide_index=True, width="stretch")

st.subheader("Import label candidates")
st.markdown("A model's proposals for stored turns, to review: a turnlens candidate file (`docs/review.md`), or "
            "another labelling tool's export: Label Studio tasks with predictions, Argilla records with "
            "suggestions, Prodigy JSONL (`docs/interop.md`). All or nothing: any problem and nothing is written.")
CANDIDATE_TITLES = {"turnlens": "turnlens candidates (.jsonl, .jsonl.gz, .parquet)",
                     "labelstudio": "Label Studio tasks (.json, .jsonl)", "argilla": "Argilla records (.json, .jsonl)",
                     "prodigy": "Prodigy tasks (.jsonl, .json)"}
if not settings.read_only:
    with st.form("import_candidates"):
        upload = st.file_uploader("Candidate file", key="candidates_file")
        fmt = st.selectbox("Format", CANDIDATE_FORMATS, format_func=lambda f: CANDIDATE_TITLES.get(f, f),
                           key="candidates_format")
        go = st.form_submit_button("Import candidates")
    if go and upload is None:
        st.error("Choose a candidate file.")
    elif go:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"upload{''.join(Path(upload.name).suffixes[-2:])}"  # the suffix says how to read it
            path.write_bytes(upload.getvalue())
            try:
                read = read_candidate_file(path, fmt=fmt, name=upload.name,
                                           turn_texts=lambda k: get_turn_texts(conn, k))
                result = store.insert_candidates(conn, read.table)
            except LogFormatError as exc:
                st.error(f"Nothing was imported: {exc.total:,} problem(s).")
                st.code(format_problems(exc.problems), language=None)
            except store.IngestConflictError as exc:
                st.error("Nothing was imported: the candidates contradict the database.")
                st.code(str(exc), language=None)
            else:
                resources.clear_reads()
                st.success(f"{result.rows_read:,} candidates read, {result.rows_added:,} added, "
                           f"{result.rows_already_present:,} already present.")
                if read.skipped:  # items proposing nothing are said, not dropped
                    st.text("Not imported: " + ", ".join(f"{n:,} {why}" for why, n in read.skipped.items()))
