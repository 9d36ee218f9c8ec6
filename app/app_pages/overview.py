"""Overview: size of the dataset, failure signals and pooled WER by domain (counts, dialogue-clustered intervals;
each bar opens its dialogues), and over time."""

import streamlit as st

from analysis.rates import EVENTS, group_rates, group_wer
from analysis.wer_normalise import label
from app import resources, store
from app.page import start
from components import charts
from components.wer_choice import wer_normaliser

# What a clicked bar filters the Dialogues page by, beside its domain (that page validates every parameter).
DIALOGUE_PARAMS = {"unhandled": {"status": "unhandled"}, "error": {"status": "error"}, "barge_in": {"barge": "1"},
                   "negative_feedback": {"feedback": "negative"}, "wer": {"sort": "wer"}}

page = start("Overview")
settings, conn, db, dataset, reviewer = page.settings, page.conn, page.db, page.dataset, page.reviewer


def follow(key: str, pick: tuple[str, str | None] | None) -> None:
    """Open the Dialogues page filtered to a clicked bar, once per click: a selection the chart still holds
    when the reader comes back must not send them away again."""
    seen = f"{key}_followed"
    if pick is None:
        st.session_state.pop(seen, None)
    elif st.session_state.get(seen) != pick:
        st.session_state[seen] = pick
        what, domain = pick
        st.switch_page("app_pages/dialogues.py",
                       query_params={"domain": domain or charts.NO_DOMAIN, **DIALOGUE_PARAMS[what]})


normaliser = wer_normaliser(conn, dataset, key="ov_wer_normaliser")
counts, sums, by_day = resources.overview(conn, str(settings.db_path), dataset)
if normaliser != counts.normaliser:
    # The cached read holds the dataset's default normaliser; another one is read as picked.
    counts = store.get_overview_counts(conn, dataset, normaliser)
    sums = store.list_domain_signal_sums(conn, dataset, normaliser)
    by_day = store.list_signals_by_day(conn, dataset, normaliser)
wer_name = label(normaliser)

cols = st.columns(6)
cols[0].metric("Turns", f"{counts.turns:,}")
cols[1].metric("Dialogues", f"{counts.dialogues:,}")
cols[2].metric("Users", f"{counts.users:,}")
cols[3].metric(f"Pooled {wer_name}", "n/a" if counts.pooled_wer is None else f"{counts.pooled_wer:.1%}",
               help="Sum of word errors over sum of reference words, for turns with a reference transcript "
                    f"({counts.turns_with_reference:,} turns, {counts.ref_words:,} words), both transcripts "
                    f"normalised by {normaliser}.")
cols[4].metric("Unhandled", f"{counts.unhandled / counts.turns:.1%}", help="Responses with status 'unhandled'.")
cols[5].metric("Barge-ins", f"{counts.barge_ins / counts.turns:.1%}", help="Turns the user interrupted.")
st.caption(f"From {counts.first:%Y-%m-%d} to {counts.last:%Y-%m-%d} (UTC)."
           + ("" if counts.pooled_cer is None else
              f" Pooled {label(normaliser, 'CER')}: {counts.pooled_cer:.1%} (character edits over "
              f"{counts.ref_chars:,} reference characters)."))

rates, wer = group_rates(sums), group_wer(sums)

st.subheader("Failure signals by domain")
st.caption("Each bar: the share of the domain's turns with the signal, labelled turns with it / turns, highest "
           "first. Error bars: 95% intervals with the dialogue as the unit (a Wilson interval on the effective "
           "number of turns, as turns of one dialogue are not independent). Click a bar to open its dialogues.")
log = st.toggle("Log scale where one domain dwarfs the rest", value=True, key="ov_log")
grid = st.columns(2)
for i, event in enumerate(EVENTS):
    with grid[i % 2]:
        st.markdown(f"**{charts.EVENT_LABELS[event]}**")
        fig = charts.event_by_domain(rates[rates["event"] == event], log=None if log else False)
        bars = st.plotly_chart(fig, key=f"ov_{event}", on_select="rerun", selection_mode="points")
        follow(f"ov_{event}", charts.clicked_domain(bars["selection"]))

st.subheader(f"Pooled {wer_name} by domain")
st.caption(f"Word errors over reference words, both transcripts normalised by {normaliser}, on its own axis; error "
           "bars: 95% intervals with the dialogue as the unit. Click a bar to open the domain's dialogues, highest "
           "WER first.")
bars = st.plotly_chart(charts.wer_by_domain(wer, normaliser=normaliser), key="ov_wer", on_select="rerun",
                       selection_mode="points")
follow("ov_wer", charts.clicked_domain(bars["selection"]))

st.subheader("Over time")
st.plotly_chart(charts.signals_over_time(by_day, normaliser=normaliser), key="signals_over_time")
with st.expander("By domain, as tables"):
    pct = {c: st.column_config.NumberColumn(c.replace("ci_", "95% ").replace("_", " "), format="percent")
           for c in ("rate", "pooled_wer", "ci_low", "ci_high")}
    named = {"group": rates["group"].fillna(charts.NO_DOMAIN)}
    st.dataframe(rates.assign(**named, event=rates["event"].map(charts.EVENT_LABELS)), hide_index=True,
                 width="stretch", column_config={**pct, "group": "domain", "event_dialogues": "dialogues with it",
                                                 "n_eff": None})
    st.dataframe(wer.assign(group=wer["group"].fillna(charts.NO_DOMAIN)), hide_index=True, width="stretch",
                 column_config={**pct, "group": "domain",
                                "pooled_wer": st.column_config.NumberColumn(f"pooled {wer_name}", format="percent")})
