"""Session-state keys, as constants, so pages never disagree on a spelling."""

REVIEWER = "reviewer"  # the accepted reviewer name (normalised, no look-alike of another's) or None: pages read this
IDENTITY = "identity"  # accounts mode: the verified app.accounts.Identity of this session, set by sign-in only
REVIEWER_BOX = "reviewer_box"  # what was typed in the sidebar's Reviewer box, before it is checked
DATASET = "dataset"
DIALOGUE_PAGE = "dialogue_page"
WER_NORMALISER = "wer_normaliser"  # {dataset: the WER normaliser picked for it}, shared by every page showing WER
