"""Label generation: the dialogue label model (intent, slots, goals, defect) and its evaluation."""
