"""The former home of every task loader, kept so `cowest.tasks.loaders` imports keep working.

The code now lives in `readers` (files), `fields` (field coercion), `splits`, `flow` (the shared load flow) and
`families/` (one module per dataset family); `registry` names the loaders.
"""

from __future__ import annotations

from .families.evals import load_evals_mcq, parse_mcq_prompt
from .families.generic import load_csv, load_jsonl
from .families.ifqa import load_ifqa
from .families.medmcqa import load_medmcqa
from .families.mix import load_mix
from .families.mmlu import load_mmlu
from .families.prosocial import PROSOCIAL_LABELS, load_prosocial
from .flow import RowParser, build_corpus
from .readers import Loc, Row, Rows, TaskDataError, iter_rows
from .splits import dedupe, split_examples

__all__ = [
    "PROSOCIAL_LABELS", "Loc", "Row", "RowParser", "Rows", "TaskDataError", "build_corpus", "dedupe", "iter_rows",
    "load_csv", "load_evals_mcq", "load_ifqa", "load_jsonl", "load_medmcqa", "load_mix", "load_mmlu",
    "load_prosocial", "parse_mcq_prompt", "split_examples",
]
