"""Coordination chunking: list items in an utterance tagged B/I/O (METHODS.md section 6), and their evaluation."""
