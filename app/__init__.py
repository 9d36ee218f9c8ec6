"""turnlens application: the DuckDB store, the command line and the Streamlit app."""

__version__ = "0.1.0"
