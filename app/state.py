"""Session-state keys, as constants, so pages never disagree on a spelling."""

REVIEWER = "reviewer"
DATASET = "dataset"
DIALOGUE_PAGE = "dialogue_page"
