"""Generic JSONL / JSON / CSV / TSV files (tasks `jsonl` and `csv`): `task.fields` maps our fields to columns.

Columns that no field maps are kept as example metadata (`mining.where`, `task.subjects` on a `subject` column).
Documented for users by `INFO` (`cowest tasks --describe jsonl`) and the README, "Bring your own data".
"""

from __future__ import annotations

from pathlib import Path

from ...config import TaskConfig
from ..base import LETTERS, Example, TaskData
from ..fields import field_error, field_list, field_text, mc_gold, norm, row_id, short
from ..flow import RowParser, load_source
from ..readers import Loc, Row, TaskDataError
from ..registry import LoaderInfo, described
from ..types import TYPES

FIELDS = ("id", "question", "options", "gold", "answers", "explanation")
RESERVED = ("source",)  # metadata keys the loader writes itself: `source` is the row's file:line

INFO = LoaderInfo(
    summary="Your own questions in one file (task.path; .jsonl, .json array or an object holding one under "
            "'data', 'rows', 'examples', ..., .csv, .tsv or .parquet).",
    fields={
        "id": "the example id; empty or missing: <file stem>-<line>",
        "question": "the question text (required)",
        "options": "a list, a JSON/Python list literal in a cell, text split on options_sep, or {text: [...], "
                   "label: [...]} (the gold then one of the labels); several columns as 'opa,opb,opc,opd'. "
                   "Required for multiple_choice (at most 26); for classification, the labels",
        "gold": "multiple_choice: a letter (B, b, (b), b)), an option's text, 'c) text', or an index counted from "
                "index_base; short_answer: the answer (empty: the first of answers); classification: a label",
        "answers": "short_answer only: every accepted answer, a list or text split on answers_sep",
        "explanation": "text stating the facts behind the answer: the Background of the weak model's SFT target",
    },
    knobs={
        "task.path": "the training file (required); its ending picks the reader",
        "task.type": "required: multiple_choice, short_answer or classification",
        "task.fields": "our field -> your column; a field left out is read from the column of its own name",
        "task.test_path": "a second file, same mapping: the test split (training rows with its questions are "
                          "dropped, and n_train / n_test become seeded samples)",
        "task.options.options_sep": "separator of an options cell (default '|')",
        "task.options.answers_sep": "separator of an answers cell (default '|')",
        "task.options.index_base": "what a numeric multiple-choice gold counts from (default 0)",
        "task.options.labels": "classification: the label set (default: every gold label in the file, sorted)",
        "task.options.on_error": "raise (default: a bad row stops the load naming file:line and field) or skip "
                                 "(bad rows are logged and dropped)",
        "task.options.delimiter": "the CSV delimiter (default ',' for .csv, tab for .tsv)",
        "task.corpus_path": "your fact statements (see every task): SFT backgrounds and the retrieval corpus",
    },
    notes=(
        "Every other column is kept as example metadata: mining.where: {column: value} selects questions by it "
        "(a cell is compared as text), and a 'subject' column enables task.subjects.",
        "A column named 'source' must be mapped or renamed: metadata 'source' is the row's file:line.",
        "Exact repeats (same question, options and gold) are dropped.",
    ),
)


def _generic_row(cfg: TaskConfig, prefix: str, labels: list[str] | None) -> RowParser:
    if cfg.type is None:
        raise TaskDataError(f"task {cfg.name!r}: task.type is required (multiple_choice, short_answer, classification)")
    col = {k: cfg.fields.get(k, k) for k in FIELDS}
    unknown = set(cfg.fields) - set(col)
    if unknown:
        raise TaskDataError(f"task.fields: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(col)}")
    opt_cols = [c.strip() for c in col["options"].split(",")] if "," in col["options"] else None
    used = {*col.values(), *(opt_cols or ())}
    sep = cfg.options.get("options_sep", "|")
    answers_sep = cfg.options.get("answers_sep", "|")
    index_base = int(cfg.options.get("index_base", 0))
    kind = cfg.type

    def parse(loc: Loc, row: Row) -> Example:
        question = field_text(row, col["question"], loc)
        gold_value = row.get(col["gold"])
        if opt_cols:
            options: list[str] | None = [field_text(row, c, loc) for c in opt_cols]
        elif isinstance(labelled := row.get(col["options"]), dict):  # {"text": [...], "label": [...]}, as ARC's
            options = field_list({col["options"]: labelled.get("text")}, col["options"], loc)
            keys = [str(k) for k in labelled.get("label") or []]
            if str(gold_value) in keys and len(keys) == len(options):
                gold_value = LETTERS[keys.index(str(gold_value))]
        else:
            options = field_list(row, col["options"], loc, sep=sep, required=kind == "multiple_choice") or None
        answers = field_list(row, col["answers"], loc, sep=answers_sep, required=False)
        if kind == "short_answer":
            gold = field_text(row, col["gold"], loc, required=not answers) or answers[0]
            answers = answers or [gold]
        elif kind == "multiple_choice":
            assert options is not None
            if len(options) > len(LETTERS):
                raise field_error(loc, col["options"], f"at most {len(LETTERS)} options, got {len(options)}")
            if gold_value is None or gold_value == "":
                raise field_error(loc, col["gold"], "missing" if col["gold"] not in row else "empty")
            gold = mc_gold(gold_value, options, loc, col["gold"], index_base)
        else:
            label_set = options or labels
            raw = field_text(row, col["gold"], loc)
            if label_set:
                match = [lb for lb in label_set if norm(lb) == norm(raw)]
                if not match:
                    raise field_error(loc, col["gold"], f"{short(raw)} is not one of the labels {label_set}")
                raw = match[0]
            gold, options = raw, label_set
        return Example(
            id=row_id(row, loc, prefix, key=col["id"]),
            question=question,
            options=options,
            gold=gold,
            answers=answers if kind == "short_answer" else [],
            explanation=field_text(row, col["explanation"], loc, required=False),
            metadata={**_extra_columns(row, used, loc), "source": str(loc)},
        )

    return parse


def _extra_columns(row: Row, used: set[str], loc: Loc) -> dict:
    """The row's columns that no field maps, as metadata."""
    extra = {k: v for k, v in row.items() if k not in used}
    for key in RESERVED:
        if key in extra:
            raise field_error(loc, key, "reserved (metadata 'source' is the row's file:line): map it in task.fields "
                                        "or rename the column")
    return extra


def _load_generic(cfg: TaskConfig) -> TaskData:
    if not cfg.path:
        raise TaskDataError(f"task {cfg.name!r}: task.path is required")
    labels = cfg.options.get("labels")
    parse = _generic_row(cfg, Path(cfg.path).stem, labels)

    def fill_labels(examples: list[Example]) -> None:
        # No label set given: every gold label in the file (first spelling of each, sorted) becomes the
        # options of rows without any, and golds take that spelling.
        canon: dict[str, str] = {}
        for e in examples:
            canon.setdefault(norm(e.gold), e.gold)
        found = sorted(canon.values(), key=norm)
        for e in examples:
            if not e.options:
                e.options, e.gold = found, canon[norm(e.gold)]

    prepare = fill_labels if cfg.type == "classification" and not labels else None
    return load_source(cfg, TYPES[cfg.type], parse, prepare=prepare)  # type: ignore[index]  # type checked above


@described(INFO)
def load_jsonl(cfg: TaskConfig) -> TaskData:
    """A generic JSONL (or JSON array) file; task.fields maps id/question/options/gold/answers/explanation."""
    return _load_generic(cfg)


@described(INFO)
def load_csv(cfg: TaskConfig) -> TaskData:
    """A generic CSV/TSV file; options may be one delimited column or several ('opa,opb,opc,opd')."""
    return _load_generic(cfg)
