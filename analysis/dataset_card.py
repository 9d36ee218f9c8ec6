"""The dataset card (README.md) written beside a Parquet labels export: schema, provenance and licence.

Hugging Face's hub and ``datasets`` read a README.md with a YAML header as the dataset's card: ``configs``
points ``load_dataset(folder)`` at the Parquet file, ``license`` names the licence. The body says, for a person,
what each column holds and its type, which model runs proposed the labels and which reviewers decided them,
when and by which turnlens version the file was written, and the licence of the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

# What each column of the labels export holds (app.store.export_labels), in the export's order.
COLUMNS: dict[str, str] = {
    "candidate_id": "the candidate's id in the turnlens database",
    "task": "what is labelled: intent, slots, goal_start, goal_success, failure_point, skill, rewrite, items, "
            "transcript, or a task of an imported candidate file",
    "target_kind": "turn, dialogue or pair (two utterances)",
    "dialogue_id": "the dialogue of the target",
    "turn_index": "the turn of the target (null: the whole dialogue)",
    "other_dialogue_id": "a pair target's second utterance: its dialogue",
    "other_turn_index": "a pair target's second utterance: its turn",
    "text": "the target turn's recognised text (asr_text)",
    "proposed_value": "the model's proposal, a value of the row's task (see below)",
    "score": "the model's confidence in [0, 1]; higher means more likely right",
    "status": "agreed, adjudicated, conflict or null (undecided)",
    "verdict": "the resolved verdict: accept, correct, reject, or null",
    "label": "the label people settled on, a value of the row's task (see below); null for a rejection",
    "list_slot": "an accepted or corrected coordination split (task items) as the list-valued slot {type, value}",
    "transcript": "an accepted or corrected transcript (task transcript), as plain text",
    "reviewers": "the reviewers whose decisions stand",
    "decided_by_roles": "the roles that decided: review, audit, bulk",
    "adjudicator": "who adjudicated a conflict, if anyone did",
    "decided_at": "when the label was last decided",
    "model_name": "the model run that proposed the candidate: name",
    "model_version": "its version",
    "model_parameters": "its parameters (JSON)",
    "model_run_at": "when it ran",
    "dataset": "the turnlens dataset",
}

SLURP_LICENCE = ("Text derived from SLURP (E. Bastianelli, A. Vanzo, P. Swietojanski, V. Rieser, \"SLURP: A Spoken "
                 "Language Understanding Resource Package\", EMNLP 2020, https://github.com/pswietojanski/slurp) is "
                 "licensed under Creative Commons Attribution 4.0 (CC BY 4.0, "
                 "https://creativecommons.org/licenses/by/4.0/): credit the authors when you share it. This "
                 "includes turnlens's sample data and the demo datasets built on it.")
OWN_LOGS_LICENCE = ("Text from your own logs (turn text, values) carries the licence of those logs; the labels "
                    "and their provenance are yours.")


@dataclass(frozen=True)
class CardFacts:
    """Everything a card says. runs: (model name, version, run_at or None, rows); reviewers and adjudicators:
    (name, rows); sources: (the import's sources, imported_at, rows added); tasks: the tasks in the file."""

    file_name: str
    dataset: str
    kind: str
    task: str | None
    rows: int
    exported_at: str
    version: str
    schema: pa.Schema
    runs: list[tuple] = field(default_factory=list)
    reviewers: list[tuple] = field(default_factory=list)
    adjudicators: list[tuple] = field(default_factory=list)
    sources: list[tuple] = field(default_factory=list)
    slurp_derived: bool = False


def type_name(kind: pa.DataType) -> str:
    """A column type as the card prints it: string, int64, bool, timestamp[us, tz=UTC], json,
    list<...>, struct<name: type, ...>."""
    if isinstance(kind, pa.BaseExtensionType):
        return "json" if kind.extension_name == "arrow.json" else type_name(kind.storage_type)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return f"list<{type_name(kind.value_type)}>"
    if pa.types.is_struct(kind):
        return "struct<" + ", ".join(f"{f.name}: {type_name(f.type)}" for f in kind) + ">"
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return "string"
    return str(kind)


def is_slurp_source(source: str) -> bool:
    """Whether an import's source names SLURP or turnlens's sample data (every real utterance there is SLURP's)."""
    low = source.lower()
    return "slurp" in low or "sample_data" in low or "speech_demo" in low


def _table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    def cell(v: object) -> str:
        return "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return out


def _yaml_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dataset_card(facts: CardFacts) -> str:
    """The card's Markdown (with its YAML header) for facts."""
    licence = "cc-by-4.0" if facts.slurp_derived else "other"
    what = {"accepted": "accepted labels (accepted or corrected; agreed or adjudicated)",
            "resolved": "resolved labels, rejections included",
            "candidates": "every candidate with its score, and its resolution if any"}.get(facts.kind, facts.kind)
    command = f"turnlens export --what {facts.kind} --dataset {facts.dataset}"
    if facts.task:
        command += f" --task {facts.task}"
    pretty = _yaml_text(f"turnlens {facts.kind} labels: {facts.dataset}")
    lines = ["---", f"license: {licence}", f"pretty_name: {pretty}",
             "tags:", "- turnlens", "configs:", "- config_name: default",
             f"  data_files: {_yaml_text(facts.file_name)}", "---", "",
             f"# {facts.dataset}: {what}", "",
             f"{facts.rows:,} rows{f' of task {facts.task}' if facts.task else ''} in `{facts.file_name}`, written "
             f"{facts.exported_at} by turnlens {facts.version} (`{command} --out {facts.file_name}`).", "",
             "## Loading", "", "```python", "from datasets import load_dataset", "",
             f'ds = load_dataset("parquet", data_files="{facts.file_name}", split="train")',
             "# or, with this card beside it: load_dataset(\"path/to/this/folder\", split=\"train\")",
             "```", "", "pandas reads it too: `pandas.read_parquet(...)`.", "",
             "## Schema", ""]
    lines += _table(("column", "type", "what it holds"),
                    [(f"`{f.name}`", f"`{type_name(f.type)}`", COLUMNS.get(f.name, "")) for f in facts.schema])
    values = facts.schema.field("label").type if "label" in facts.schema.names else None
    lines += ["", "`proposed_value` and `label` have one type across tasks: a struct with one field per task in this "
              "file, the row's value under its own task's field (`row[\"label\"][row[\"task\"]]`), the other "
              "fields null. Each task's field is typed as its values are:", ""]
    if values is not None and pa.types.is_struct(values):
        lines += _table(("task", "value type"), [(f"`{f.name}`", f"`{type_name(f.type)}`") for f in values])
    else:
        lines += ["(no rows: the values are JSON)"]
    lines += ["", "A task whose values do not share one shape keeps `json` (JSON text, decoded by `datasets`) where "
              "they differ. JSON Lines and CSV exports of the same data carry the value itself (JSON Lines) or its "
              "JSON text (CSV) in the same columns.", "",
              "## Provenance", "", "Model runs that proposed these rows:", ""]
    lines += _table(("model", "version", "run at", "rows"), facts.runs) if facts.runs else ["(none)"]
    lines += ["", "Reviewers whose decisions stand (reviewer names as typed into turnlens):", ""]
    lines += _table(("reviewer", "rows"), facts.reviewers) if facts.reviewers else ["(none: undecided candidates)"]
    if facts.adjudicators:
        lines += ["", "Adjudicators:", ""] + _table(("adjudicator", "rows"), facts.adjudicators)
    lines += ["", f"Logs imported into the dataset `{facts.dataset}`:", ""]
    lines += _table(("sources", "imported at", "turns added"), facts.sources) if facts.sources else ["(none recorded)"]
    lines += ["", "## Licence", "", SLURP_LICENCE, "", OWN_LOGS_LICENCE, ""]
    if facts.slurp_derived:
        lines += ["This dataset's logs come from SLURP or turnlens's sample data: its text is CC BY 4.0.", ""]
    return "\n".join(lines)
