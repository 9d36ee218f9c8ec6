"""Overview: size of the dataset, pooled WER and failure signals by domain and over time."""

import streamlit as st

from app import resources
from app.page import start
from components import charts

page = start("Overview")
settings, conn, db, dataset, reviewer = page.settings, page.conn, page.db, page.dataset, page.reviewer

counts, by_domain, by_day = resources.overview(conn, str(settings.db_path), dataset)

cols = st.columns(6)
cols[0].metric("Turns", f"{counts.turns:,}")
cols[1].metric("Dialogues", f"{counts.dialogues:,}")
cols[2].metric("Users", f"{counts.users:,}")
cols[3].metric("Pooled WER", "n/a" if counts.pooled_wer is None else f"{counts.pooled_wer:.1%}",
               help="Sum of word errors over sum of reference words, for turns with a reference transcript "
                    f"({counts.turns_with_reference:,} turns, {counts.ref_words:,} words).")
cols[4].metric("Unhandled", f"{counts.unhandled / counts.turns:.1%}", help="Responses with status 'unhandled'.")
cols[5].metric("Barge-ins", f"{counts.barge_ins / counts.turns:.1%}", help="Turns the user interrupted.")
st.caption(f"From {counts.first:%Y-%m-%d} to {counts.last:%Y-%m-%d} (UTC).")

st.subheader("Failure signals by domain")
st.plotly_chart(charts.signals_by_domain(by_domain), key="signals_by_domain")
st.subheader("Pooled WER by domain")
st.plotly_chart(charts.wer_by_domain(by_domain), key="wer_by_domain")
st.subheader("Over time")
st.plotly_chart(charts.signals_over_time(by_day), key="signals_over_time")
with st.expander("By domain, as a table"):
    st.dataframe(by_domain, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="percent")
                                for c in by_domain.columns if c.endswith("_rate") or c == "pooled_wer"})
