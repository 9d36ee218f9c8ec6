"""turnlens analysis: pure Python over Arrow/NumPy (no Streamlit, no SQL)."""
