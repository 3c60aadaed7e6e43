"""`cowest init DATA_FILE`: a recipe for a user's own data, with the settings the published measurements support,
sized by a budget of minutes on the offline default models (or of strong calls for a remote strong model).

`survey` reads the data (columns, task type, which questions resemble the test ones, the facts' length), `size`
turns a budget into the recipe's numbers, and `render` writes the recipe, every choice with its reason beside it.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .config import SftRecallConfig
from .systems import get_systems
from .tasks.base import LETTERS
from .tasks.fields import field_list
from .tasks.readers import Loc, TaskDataError, iter_rows, iter_text_lines

# Column names each field is looked for under, in order (a user's own mapping wins: --field gold=col).
COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("id", "idx", "uid", "qid"),
    "question": ("question", "q", "prompt", "input", "query", "text"),
    "gold": ("gold", "answer", "label", "target", "output", "correct_answer", "solution", "completion", "response",
             "answerkey", "answer_key"),
    "options": ("options", "choices"),
    "answers": ("answers", "aliases", "accepted"),
    "explanation": ("explanation", "exp", "rationale", "background"),
}
MAX_LABELS = 10  # a gold with at most this many distinct values over many rows is a label

# What the budget pays for, measured with the offline default models on the 2-core CPU machine (README, "What to
# expect on your own data"): seconds per SFT step (8 rows), per strong call in mining and in evaluation (where
# every answer gets 384 tokens), strong calls per test question (strong alone, retrieval, refinement, CoWest).
SFT_STEP_S = 7.0
SFT_EPOCHS = 4  # the draft format is learnt by then; the facts need their repeats too
# Times each fact line is seen in SFT (repeats x epochs): 48 rail facts seen 24 times were stated by 50% of
# validation drafts, 40 times by 60%; 16 formulary facts seen 40 times by 42%; the formulary recipe's doses, seen
# ~56 times in eight wordings, by 87-92%.
EXPOSURES = 60
PACKED_WORDS = 60  # fact lines packed into one SFT row up to this many words (collab.targets.EVIDENCE_WORDS)
MINE_CALL_S = 7.0
EVAL_CALL_S = 9.0
SYSTEMS = ("weak_sft", "weak_aligned", "strong", "retrieval", "refine", "cowest")  # the evaluation's rows
# SFT takes what the facts' exposures need, up to `SFT_MAX` of the budget; after `OTHER` (drafting, DPO, validation,
# loading), the rest goes to mining and the test evaluation.
SFT_MAX, OTHER, MINE_OF_REST = 0.4, 0.15, 0.45
MINE_OF_CALLS = 0.45  # of a budget of strong calls, mining's share (as much again to the test evaluation)
MIN_TEST = 10  # test questions evaluated, whatever the budget
MIN_MINE_CALLS = 20  # strong calls mining may spend, whatever the budget
MAX_EXTENSIONS, EXTRA_EPOCHS = 2, 2  # the SFT check's extensions: each trains `EXTRA_EPOCHS` more epochs
PAIR_TARGET = 48  # 40 to train on and the held-out share's: fewer left DPO's margins flat in our measurements
MIN_PAIRS = 40  # pairs a seed should mine, held-out ones included
# The strong model's context: the prompt's instructions, the question, a draft or the retrieved facts, and the answer
# (eval.strong_max_tokens), at a generous tokens-per-word; never below what the examples run with.
PROMPT_TOKENS, TOKENS_PER_WORD, ANSWER_TOKENS, RETRIEVED, MIN_CTX = 400, 1.6, 384, 2, 2048
# What adaptive mining made in the published runs (results/*/round_1/mining_stats.json): pairs per 100 strong
# requests (travel policy 21.4-39.3, rail fares 32.6-48.1, the formulary 43.0, its worked example 63.9) and pairs
# per candidate question (the formulary 0.67, its worked example 0.67 and rail fares seed 0 1.25 where mining ran
# out of questions; rail fares up to 2.06).
PAIRS_PER_100 = (21.4, 63.9)
PAIRS_PER_CANDIDATE = (0.67, 2.06)


@dataclass
class Survey:
    """What `cowest init` learnt about the data."""

    path: str
    test_path: str | None
    facts_path: str | None
    fields: dict[str, str]  # our field -> the file's column
    type: str
    rows: int
    test_rows: int
    where: dict[str, str] = field(default_factory=dict)  # training questions that look like the test's
    pool: int = 0  # training questions matching `where`
    facts: int = 0
    fact_words: int = 0  # 90th percentile of a fact's words
    index_base: int = 0  # what a numeric multiple-choice gold counts from
    question_words: int = 0  # the longest question's words, its options included
    notes: list[str] = field(default_factory=list)


def survey(path: str, test_path: str | None = None, facts_path: str | None = None, task_type: str | None = None,
           fields: dict[str, str] | None = None) -> Survey:
    """Read the data files and decide the field mapping, the task type and the mining selection."""
    rows = [r for _, r in iter_rows(path)]
    test = [r for _, r in iter_rows(test_path)] if test_path else []
    if not rows:
        raise TaskDataError(f"{path}: no rows")
    columns = list(dict.fromkeys(k for r in rows for k in r))
    mapping = map_fields(columns, fields or {}, path)
    kind = _task_type(rows, mapping, path, task_type)
    s = Survey(path=path, test_path=test_path, facts_path=facts_path, fields=mapping, type=kind, rows=len(rows),
               test_rows=len(test))
    s.where, s.pool = _like_test(rows, test, columns, mapping)
    s.question_words = max(_words(r, mapping) for r in rows + test)
    if kind == "multiple_choice" and (base := _index_base(rows, mapping)):
        s.index_base = base
        s.notes.append("every gold is a number and none is 0: read as counted from 1 (task.options.index_base: 1)")
    if facts_path:
        facts = [line for _, line in iter_text_lines(facts_path)]
        s.facts = len(facts)
        words = sorted(len(f.split()) for f in facts)
        s.fact_words = words[min(len(words) - 1, int(0.9 * len(words)))] if words else 0
    elif "explanation" in mapping:
        s.notes.append("no fact file (--facts): SFT learns only from the questions' explanations, and the SFT check "
                       "can only ask whether drafts state the gold answer")
    else:
        s.notes.append("no fact file (--facts) and no explanation column: SFT targets can only restate each training "
                       "answer, so the weak model learns the domain only where test questions ask what training "
                       "questions answered; the SFT check asks whether drafts state the gold answer, and warns or "
                       "stops the run where they do not. A fact file (one statement a line) is what the method needs")
    return s


def map_fields(columns: list[str], given: dict[str, str], path: str) -> dict[str, str]:
    """Our field -> the file's column: the user's mapping, else by name; question and gold are required."""
    lower = {c.lower(): c for c in columns}
    out = {}
    for ours, names in COLUMNS.items():
        if ours in given:
            if given[ours] not in columns:
                raise TaskDataError(f"{path}: --field {ours}={given[ours]}: no such column; columns: {', '.join(columns)}")
            out[ours] = given[ours]
        elif found := next((lower[n] for n in names if n in lower), None):
            out[ours] = found
        elif ours == "options" and (group := _option_columns(columns)):
            out[ours] = ",".join(group)
    for need in ("question", "gold"):
        if need not in out and not (need == "gold" and "answers" in out):
            raise TaskDataError(f"{path}: no column for the {need} (looked for {', '.join(COLUMNS[need])}); name it "
                                f"with --field {need}=COLUMN (columns: {', '.join(columns)})")
    return out


def _option_columns(columns: list[str]) -> list[str] | None:
    """One column per option (A..D, opa..opd, option_1..option_4, choice0..): the longest such run, in order."""
    groups: dict[str, dict[int, str]] = {}
    for c in columns:
        m = re.fullmatch(r"(?i)(?:(op|opt|option|choice|answer|ending)[ _-]?)?([a-z]|\d)", c.strip())
        if not m or (not m.group(1) and not m.group(2).isalpha()):
            continue  # a bare digit is no option column
        prefix, tag = (m.group(1) or "").lower(), m.group(2).lower()
        index = ord(tag) - ord("a") if tag.isalpha() else int(tag)
        groups.setdefault(f"{prefix}:{tag.isalpha()}", {})[index] = c
    runs = []
    for found in groups.values():
        first = min(found)
        run = [found[i] for i in range(first, first + len(found)) if i in found]
        if first <= 1 and len(run) >= 2:
            runs.append(run)
    return max(runs, key=len) if runs else None


def _task_type(rows: list[dict], f: dict[str, str], path: str, task_type: str | None = None) -> str:
    """The task type: the user's, else read from the options and the golds."""
    if task_type:
        return task_type
    golds = _golds(rows, f)
    if "," in f.get("options", ""):
        return "multiple_choice"  # one column per option
    if "options" in f:
        sets = {tuple(_option_texts(r.get(f["options"]))) for r in rows}
        labels = {str(o).strip().lower() for o in (next(iter(sets)) or ())} if len(sets) == 1 else set()
        if labels and all(g.lower() in labels for g in golds):
            return "classification"  # one label set for every row, golds given as labels
        return "multiple_choice"
    distinct = set(g.lower() for g in golds)
    if len(distinct) == 1:
        raise TaskDataError(f"{path}: every row's gold is {golds[0]!r}: nothing to learn or score; check the gold "
                            f"column ({f.get('gold')}; --field gold=COLUMN)")
    if all(len(g) == 1 and g.upper() in LETTERS for g in golds):
        letters = ", ".join(sorted(g.upper() for g in distinct))
        raise TaskDataError(f"{path}: every gold is an option letter ({letters}) "
                            "but no options column was found; name it with --field options=COLUMN (a list), or "
                            "--field options=A,B,C,D (one column per option), or pass --type")
    if len(distinct) <= MAX_LABELS and len(rows) >= 4 * len(distinct):
        return "classification"
    return "short_answer"


def _golds(rows: list[dict], f: dict[str, str]) -> list[str]:
    """Every row's gold cell as stripped text."""
    return [str(r.get(f.get("gold", ""), "")).strip() for r in rows]


def _option_texts(value: object) -> list:
    """A row's options as the loader reads them: a list, {text: [...], label: [...]}, or a cell split on '|'."""
    if isinstance(value, dict):
        value = value.get("text")
    if isinstance(value, str):
        try:
            return field_list({"options": value}, "options", Loc("", 0), sep="|", required=False)
        except TaskDataError:
            return [value]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _words(row: dict, f: dict[str, str]) -> int:
    """A row's question and options, in words."""
    cols = [f["question"], *(f.get("options", "").split(",") if "options" in f else [])]
    return sum(len(str(row.get(c) or "").split()) for c in cols if c)


def _index_base(rows: list[dict], f: dict[str, str]) -> int:
    """1 where every multiple-choice gold is a whole number and none is 0 (1-based answer indexes), else 0."""
    if any(isinstance(r.get(f.get("options", "")), dict) for r in rows):
        return 0  # labelled choices: the gold is one of the labels
    golds = _golds(rows, f)
    return int(all(g.isdigit() for g in golds) and "0" not in golds)


def _like_test(rows: list[dict], test: list[dict], columns: list[str], f: dict[str, str]) -> tuple[dict, int]:
    """A column whose one value marks every test question (e.g. kind: reasoning): mine the training questions like
    them. None found: every training question is a mining candidate."""
    if test:
        for c in columns:
            if c in f.values():
                continue
            values = Counter(str(r.get(c)) for r in rows if c in r)
            in_test = {str(r.get(c)) for r in test}
            if 1 < len(values) <= 6 and len(in_test) == 1 and (v := in_test.pop()) in values:
                return {c: v}, values[v]
    return {}, len(rows)


@dataclass
class Sizes:
    """The recipe's numbers for a budget."""

    sft_epochs: int
    fact_repeats: int  # task.sft_corpus: each fact line this many times per epoch (0: no fact file)
    strong_call_budget: int
    n_test: int | None
    share: float
    draft_max_tokens: int
    minutes: float | None
    n_ctx: int = MIN_CTX  # strong.n_ctx: room for the longest prompt and its answer
    sft_extensions: int = MAX_EXTENSIONS  # sft_recall.max_extensions: as many as the SFT share of the budget pays for
    systems: tuple[str, ...] = SYSTEMS
    why: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def size(s: Survey, minutes: float | None = 60.0, strong_calls: int | None = None,
         systems: Sequence[str] = SYSTEMS, advise: bool = True) -> Sizes:
    """Split a budget of minutes (offline default models, 2 cores) or of strong calls between the stages."""
    per_question = max(1, sum(x.kind != "weak" for x in get_systems(systems)))  # strong calls a test question costs
    share = min(0.6, max(0.3, 60 / max(s.pool, 1)))  # about 60 mining candidates, at most 60% of them
    question_rows = round(0.85 * (s.rows - share * s.pool))  # SFT's questions: not mined, not validation
    draft_words = max(16, min(2 * s.fact_words, PACKED_WORDS) + 6)  # a Background of one or two facts, the Answer
    tokens = min(256, max(48, 8 * math.ceil(1.6 * draft_words / 8)))
    epochs, repeats = SFT_EPOCHS, math.ceil(EXPOSURES / SFT_EPOCHS) if s.facts else 0
    per_row = max(1, PACKED_WORDS // max(s.fact_words, 1))

    def sft_s(e: int, r: int) -> float:
        return e * math.ceil((question_rows + math.ceil(s.facts * r / per_row)) / 8) * SFT_STEP_S

    notes: list[str] = []
    if not (steerable := (valid := _valid_questions(s, share)) >= SftRecallConfig().min_questions):
        # the run would measure recall and warn, never extend: budget no extension
        notes.append(f"SFT's validation slice would hold {valid} questions, too few to steer its check's extensions "
                     "(sft_recall.min_questions): recall is measured and reported only; more training rows fix it")
    if strong_calls is not None:
        mine = max(MIN_MINE_CALLS, round(MINE_OF_CALLS * strong_calls))
        n_test = round(MINE_OF_CALLS * strong_calls / per_question)
        why = [f"{strong_calls} strong calls: {MINE_OF_CALLS:.0%} to mining, {MINE_OF_CALLS:.0%} to evaluation"]
        extensions = MAX_EXTENSIONS if steerable else 0
    else:
        budget = 60 * (minutes or 60.0)
        while sft_s(epochs, repeats) > SFT_MAX * budget and (repeats > 2 or epochs > 2):
            repeats, epochs = (repeats - 1, epochs) if repeats > 2 else (repeats, epochs - 1)
        # the check's extensions run only when recall is short: one always (a run that needs it has a reason to
        # take longer), a second where the SFT share of the budget pays for it
        room = SFT_MAX * budget - sft_s(epochs, repeats)
        extensions = max(1, min(MAX_EXTENSIONS, int(room // sft_s(EXTRA_EPOCHS, repeats)))) if steerable else 0
        rest = budget * (1 - OTHER) - sft_s(epochs, repeats)
        mine = max(MIN_MINE_CALLS, round(MINE_OF_REST * rest / MINE_CALL_S))
        n_test = round((1 - MINE_OF_REST) * rest / (per_question * EVAL_CALL_S))
        ext = f"; up to {extensions} extension(s) of {EXTRA_EPOCHS} if its check asks" if extensions else ""
        lines = f", each fact line {repeats} times an epoch" if s.facts else ""
        why = [f"{minutes:g} minutes on 2 CPU cores with the offline default models: about "
               f"{sft_s(epochs, repeats) / 60:.0f} minutes to SFT ({epochs} epochs{lines}{ext}), "
               f"{MINE_OF_REST * rest / 60:.0f} to mining ({mine} strong calls), "
               f"{(1 - MINE_OF_REST) * rest / 60:.0f} to the test evaluation"]
    if s.facts and repeats * epochs < EXPOSURES:
        need = sft_s(SFT_EPOCHS, math.ceil(EXPOSURES / SFT_EPOCHS)) / 60
        notes.append(f"the budget shows each of the {s.facts} facts {repeats * epochs} times in SFT, fewer than the "
                     f"{EXPOSURES} our measurements call for: expect the SFT check to warn or stop; about {need:.0f} "
                     "minutes of SFT would show them enough (--minutes), or bring fewer facts")
    if advise and (note := _pairs_note(s, share, mine, minutes, strong_calls, systems)):
        notes.append(note)
    avail = s.test_rows or round(0.3 * s.rows)
    n_test = min(avail, max(MIN_TEST, n_test))
    if n_test < 30:
        notes.append(f"{n_test} test questions show the method at work, but their intervals are too wide to tell "
                     "systems apart: run several seeds (cowest run --seeds 0,1,2) or give a larger budget")
    shown = max(tokens, RETRIEVED * TOKENS_PER_WORD * s.fact_words)  # a draft, or the retrieved facts
    need = PROMPT_TOKENS + TOKENS_PER_WORD * s.question_words + shown + ANSWER_TOKENS
    n_ctx = max(MIN_CTX, 1024 * math.ceil(need / 1024))
    return Sizes(sft_epochs=epochs, fact_repeats=repeats, strong_call_budget=mine, n_ctx=n_ctx,
                 n_test=n_test if n_test < avail else None, share=round(share, 2), draft_max_tokens=tokens,
                 minutes=minutes if strong_calls is None else None, sft_extensions=extensions, systems=tuple(systems),
                 why=why, notes=notes)


def _pairs_note(s: Survey, share: float, mine: int, minutes: float | None, strong_calls: int | None,
                systems: Sequence[str]) -> str | None:
    """What mining should give at the rates measured so far when that is under `MIN_PAIRS`, and what would pay for
    them: a larger budget where strong calls are short, more questions where candidates are."""
    cands = _candidates(s, share)
    by_calls, by_cands = [mine * r / 100 for r in PAIRS_PER_100], [cands * r for r in PAIRS_PER_CANDIDATE]
    lo, hi = min(by_calls[0], by_cands[0]), min(by_calls[1], by_cands[1])
    if lo >= MIN_PAIRS:
        return None
    fixes = []
    if by_calls[0] < MIN_PAIRS:
        need = math.ceil(MIN_PAIRS * 100 / PAIRS_PER_100[0])
        if strong_calls is not None:
            more = f"--strong-calls {math.ceil(need / MINE_OF_CALLS)}"
        else:
            m = minutes or 60.0
            while size(s, m, None, systems, advise=False).strong_call_budget < need and m < 24 * 60:
                m += 5
            more = f"--minutes {m:g}"
        fixes.append(f"{more} pays for the {need} strong calls {MIN_PAIRS} pairs need at the lowest rate")
    if by_cands[0] < MIN_PAIRS:
        alone = "" if by_calls[0] < MIN_PAIRS else ", which a larger budget alone cannot give"
        fixes.append(f"they need about {math.ceil(MIN_PAIRS / PAIRS_PER_CANDIDATE[0])} candidate questions at the "
                     f"lowest rate, and this data has {cands} (its training questions like the test's, mining.share "
                     f"of them){alone}")
    return (f"mining should give {lo:.0f}-{hi:.0f} pairs at the rates measured so far ({mine} strong calls at "
            f"{PAIRS_PER_100[0]:g}-{PAIRS_PER_100[1]:g} pairs per 100; {cands} candidate questions at "
            f"{PAIRS_PER_CANDIDATE[0]:g}-{PAIRS_PER_CANDIDATE[1]:g} pairs each), and we aim for {MIN_PAIRS} (fewer "
            f"left DPO's margins flat in our measurements): " + "; ".join(fixes))


def _candidates(s: Survey, share: float) -> int:
    """The mining candidates `roles.assign` will take from these rows at this mining share."""
    return min(max(1, round(share * s.pool)), s.pool)


def _valid_questions(s: Survey, share: float) -> int:
    """The SFT validation slice `roles.assign` will hold out of these rows at this mining share."""
    cfg, rest = SftRecallConfig(), s.rows - _candidates(s, share)
    return max(0, min(max(cfg.min_valid, round(cfg.valid_fraction * rest)), cfg.max_valid, rest - 1))


def _fields_yaml(f: dict[str, str]) -> str:
    moved = {k: v for k, v in f.items() if k != v}
    return "{" + ", ".join(f"{k}: {_yaml_scalar(v)}" for k, v in moved.items()) + "}" if moved else "{}"


def _yaml_scalar(text: str) -> str:
    """A column name as a YAML flow scalar: bare where plain, else quoted ('A,B,C,D' holds flow commas)."""
    return text if re.fullmatch(r"[A-Za-z_][\w.-]*", text) else json.dumps(text)


def render(s: Survey, z: Sizes, name: str, strong_model: str | None = None, base_url: str | None = None) -> str:
    """The recipe as YAML text, each setting with its reason."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("cowest"), undefined=StrictUndefined, keep_trailing_newline=True,
                      trim_blocks=True, lstrip_blocks=True)
    text = env.get_template("recipe.yaml.j2").render(
        s=s, z=z, name=name, fields=_fields_yaml(s.fields), strong_model=strong_model, base_url=base_url,
        pair_target=PAIR_TARGET, where="{" + ", ".join(f"{k}: {v}" for k, v in s.where.items()) + "}",
        notes=[textwrap.wrap(n, 108) for n in s.notes + z.notes],
        header=textwrap.wrap(f"Written by `cowest init {s.path}`: the settings our measurements support (README, "
                             f"\"What to expect on your own data\"), sized for {'; '.join(z.why)}.", 112))
    return text if text.endswith("\n") else text + "\n"


def default_name(path: str) -> str:
    """A run name from the data file's folder or stem ('examples/rail-fares/train.jsonl' -> 'rail-fares')."""
    p = Path(path)
    stem = p.parent.name if p.stem in ("train", "data", "questions") and p.parent.name else p.stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-") or "my-domain"
