"""Loud no-ops: checks on what a stage produced that warn when it ran but cannot have changed anything.

Each check reads a stage's own outputs and returns warnings, `{"code", "message"}` dicts. The run logs them and
stores them in the stage's manifest (`counts["warnings"]`), so a skipped stage keeps its warnings and the report,
`cowest compare` and the published files show them.
"""

from __future__ import annotations

import logging
from typing import Iterable, Mapping, Sequence

from .collab.pipeline import select_sections

log = logging.getLogger(__name__)

MIN_PAIRS = 8  # fewer training pairs than this cannot move the weak model in any measurable way
IDENTICAL_SHARE = 0.9  # aligned drafts identical to the SFT drafts at least this often: alignment changed nothing

StageWarning = dict[str, str]  # {"code": ..., "message": ...}


def _warn(code: str, message: str) -> StageWarning:
    return {"code": code, "message": message}


def _share(count: int, n: int) -> str:
    return f"{count} of {n} ({100 * count / n:.1f}%)" if n else f"{count} of {n}"


def mining_warnings(stats: Mapping, round_: int, draft_max_tokens: int) -> list[StageWarning]:
    """Too few pairs to align on, and sampled drafts cut by the draft token cap."""
    out = []
    pairs = int(stats.get("train_pairs", stats.get("pairs", 0)))
    if pairs < MIN_PAIRS:
        out.append(_warn("few_pairs", (
            f"round {round_} mining: {pairs} preference pair(s) to train on (fewer than {MIN_PAIRS}), so DPO can "
            "barely move the weak model; mine more questions, raise mining.k or mining.temperature, or use "
            "mining.mode: rank")))
    n = int(stats.get("drafts", 0))
    if cut := round(n * stats.get("drafts_truncated", 0.0)):
        out.append(_cut(f"round {round_} mining", cut, n, draft_max_tokens))
    return out


def dpo_warnings(counts: Mapping, round_: int) -> list[StageWarning]:
    """A reward margin that is not above zero: on the held-out pairs' last epoch, else the last training step."""
    held = counts.get("heldout") or []
    margin = held[-1].get("rewards/margins") if held else counts.get("final_margin")
    if margin is None or margin > 0:
        return []
    where = "on the held-out pairs (last epoch)" if held else "in training (last step; no held-out pairs)"
    return [_warn("flat_margin", (
        f"round {round_} DPO: reward margin {margin:.4f} {where} is not above zero, so the aligned model does not "
        "prefer the chosen drafts; check the pairs (do chosen and rejected drafts differ?) or raise "
        "dpo.learning_rate or dpo.num_train_epochs"))]


def eval_warnings(results: Mapping, name: str, draft_max_tokens: int) -> list[StageWarning]:
    """Aligned drafts that are (nearly) the SFT drafts, and drafts cut by the draft token cap."""
    same, cut = [], []
    for variant, d in (results.get("drafts") or {}).items():
        n = int(d.get("n", 0))
        aligned = variant == "aligned" or variant.startswith("round_")
        if aligned and "changed_vs_sft" in d and n:
            k = round(n * (1 - d["changed_vs_sft"]))
            if k >= IDENTICAL_SHARE * n:
                same.append(_warn("identical_drafts", (
                    f"{name}: {_share(k, n)} {variant} drafts are identical to the SFT drafts, so alignment "
                    "changed (almost) nothing and CoWest can only repeat refinement")))
        if k := round(n * d.get("truncated_share", 0.0)):
            cut.append(_cut(f"{name}, {variant} drafts", k, n, draft_max_tokens))
    return same + cut


def shown_draft_warnings(predictions: Iterable[Mapping], sections: Sequence[str] | None, name: str) -> list[StageWarning]:
    """Aligned drafts that differ from the SFT drafts only outside `collab.draft_sections`: the strong model is shown
    the same text, so CoWest repeats refinement however much the full drafts changed. Read from the evaluation's
    predictions (the `refine` and `cowest` rows), so finished runs can be checked too."""
    if not sections:
        return []  # the strong model sees whole drafts: eval_warnings' identical-draft check covers it
    drafts: dict[str, dict[str, str]] = {"refine": {}, "cowest": {}}
    for row in predictions:
        if row.get("system") in drafts and row.get("draft") is not None:
            drafts[row["system"]][str(row["question_id"])] = row["draft"]
    qids = [q for q in drafts["cowest"] if q in drafts["refine"]]
    if not qids:
        return []
    same = sum(select_sections(drafts["cowest"][q], sections) == select_sections(drafts["refine"][q], sections)
               for q in qids)
    changed = sum(drafts["cowest"][q].strip() != drafts["refine"][q].strip() for q in qids)
    if same < IDENTICAL_SHARE * len(qids) or same == len(qids) - changed:
        return []  # enough shown drafts changed, or eval_warnings already reports the whole drafts as identical
    return [_warn("identical_shown_drafts", (
        f"{name}: {_share(same, len(qids))} aligned drafts show the strong model the same "
        f"{', '.join(sections)} as the SFT drafts (collab.draft_sections); {changed} changed only outside it, so "
        "alignment changed nothing the strong model reads and CoWest can only repeat refinement"))]


def _cut(where: str, cut: int, n: int, cap: int) -> StageWarning:
    return _warn("drafts_cut", (
        f"{where}: {_share(cut, n)} weak drafts stopped at collab.draft_max_tokens ({cap}), possibly mid-answer; "
        "raise it or shorten the draft targets"))


def report(warnings: Sequence[StageWarning]) -> list[StageWarning]:
    """Log each warning (its message names the stage) and return them, for the stage's manifest."""
    for w in warnings:
        log.warning("%s", w["message"])
    return list(warnings)


def stage_warnings(manifests: Mapping[str, Mapping]) -> list[tuple[str, StageWarning]]:
    """(stage, warning) of every manifest that stored some, in the manifests' order."""
    return [(name, w) for name, m in manifests.items() for w in (m.get("counts") or {}).get("warnings") or []]
