"""Reusable Streamlit widgets and pure Plotly chart builders."""
