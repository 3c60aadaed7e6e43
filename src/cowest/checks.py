"""Loud no-ops: checks on what a stage produced that warn when it ran but cannot have changed anything.

Each check reads a stage's own outputs and returns warnings, `{"code", "message"}` dicts whose advice names the
recipe fields to change, given the recipe's own values. The run logs them and stores them in the stage's manifest
(`counts["warnings"]`), so a skipped stage keeps its warnings and the report, `cowest compare` and the published
files show them. A warning whose code is in `STOP` also stops the run (`gate`) unless `checks.on_fail: warn`.
"""

from __future__ import annotations

import logging
from typing import Collection, Iterable, Mapping, Sequence

from .collab.prompter import select_sections
from .config import ChecksConfig, Recipe
from .errors import CowestError
from .results import EvalResults
from .systems import shown_variant

log = logging.getLogger(__name__)

MIN_PAIRS = ChecksConfig().min_pairs  # fewer training pairs than this cannot move the weak model measurably
IDENTICAL_SHARE = 0.9  # aligned drafts identical to the SFT drafts at least this often: alignment changed nothing
# Pairs that split on their question's fact and prefer the draft without it, at least this share of them (and at
# least AGAINST_FACT_MIN pairs): the feedback rewarded luck about as often as facts. Measured share: the formulary
# 0-6% (where alignment helped), rail fares 4-5%; travel policy 40-47% (2-label answers; DPO's margin flat on all
# three seeds).
AGAINST_FACT_SHARE = 0.25
AGAINST_FACT_MIN = 4
# Aligned drafts that state their question's fact this many points less often than the SFT drafts, on the held-out
# mined questions. Measured there: rail fares -14 to -43 on all four seeds (CoWest below refinement on each seed's
# validation), travel policy 0, the formulary +0 to +31.
FACT_DROP = 10.0
# What refinement would gain on the held-out mined questions if every SFT draft stated its fact (points,
# `evaluate.fact_gain`); below it, teaching facts has little to add. Measured there: the formulary +28 and +36 on the
# seeds where CoWest gained on the test, 0 on the one where it did not; rail fares 0 to +10, travel policy -13 to +7.
FACT_GAIN = 10.0
STOP = ("sft_recall_floor",)  # a stage that failed at its job: nothing after it can be useful


class StageCheckError(CowestError):
    """A stage's check failed, so the next stages would spend compute and strong calls for nothing."""

StageWarning = dict[str, str]  # {"code": ..., "message": ...}


def _warn(code: str, message: str) -> StageWarning:
    return {"code": code, "message": message}


def _share(count: int, n: int) -> str:
    return f"{count} of {n} ({100 * count / n:.1f}%)" if n else f"{count} of {n}"


def sft_warnings(counts: Mapping, recipe: Recipe) -> list[StageWarning]:
    """SFT drafts that state too few facts on validation questions: below the floor (a stop), below the target;
    with no fact to check, targets that only restated answers and draft answers no better than a guess."""
    recall, n = counts.get("recall"), int(counts.get("valid_questions") or 0)
    blind = _sft_no_facts(counts, recipe)
    if recall is None:
        return blind
    if not counts.get("recall_measurable"):
        return blind + _sft_chance_warnings(counts, recipe, n)
    shown = _share(round(recall * n), n)
    floor, target = recipe.checks.min_sft_recall, recipe.sft_recall.target
    if recall >= floor and (target is None or recall >= target):
        return []
    advice = _sft_advice(recipe, counts)
    if recall < floor:
        return [_warn("sft_recall_floor", (
            f"SFT check failed: the SFT model's drafts state the right fact for {shown} validation questions it was "
            f"not trained on (checks.min_sft_recall {floor:g}), so it has learnt (almost) none of the domain and its "
            f"drafts can only mislead the strong model; {advice}. sft/recall.jsonl shows each draft"))]
    return [_warn("sft_low_recall", (
        f"SFT: the drafts state the right fact for {shown} validation questions, below sft_recall.target "
        f"{target:g}; mining goes on, but drafts without the fact cannot help; {advice}"))]


def _sft_no_facts(counts: Mapping, recipe: Recipe) -> list[StageWarning]:
    """Every SFT target restates its answer: no fact file, and no explanation or evidence in any row."""
    sft = int((counts.get("questions") or {}).get("sft") or 0)
    if recipe.task.corpus_path or not sft or int(counts.get("templated_backgrounds") or 0) < sft:
        return []
    return [_warn("sft_no_facts", (
        f"SFT: none of the {sft} training targets had a fact to state (no fact file, no explanation column), so "
        f"the weak model learnt to restate answers, not the domain, and its drafts can help the strong model only "
        f"where a question repeats a training one; give the domain's facts in task.corpus_path (one a line)"))]


def _sft_chance_warnings(counts: Mapping, recipe: Recipe, n: int) -> list[StageWarning]:
    """No fact to check: the SFT model's draft answers no better than a guess on validation questions."""
    accuracy, chance = counts.get("valid_accuracy"), counts.get("valid_chance")
    if accuracy is None or chance is None or accuracy > chance:
        return []
    fix = ("check that task.corpus_path holds the facts these questions ask about: fewer than half of them matched a "
           "line" if recipe.task.corpus_path else "give SFT the facts behind the answers (task.corpus_path, one "
           "statement a line, or an explanation column), then the check measures them and extends SFT where they "
           "are not learnt")
    return [_warn("sft_chance", (
        f"SFT: these validation questions name no fact to check (no fact file, or facts the questions do not "
        f"match), and the SFT model's draft answers are right on {_share(round(accuracy * n), n)}, no better than "
        f"a guess ({100 * chance:.1f}%): nothing shows that it learnt the domain, and its drafts may only mislead "
        f"the strong model; {fix}"))]


def _sft_advice(recipe: Recipe, counts: Mapping) -> str:
    """What to change in this recipe for SFT to learn more of the facts."""
    epochs = recipe.sft.get("num_train_epochs")
    tips = [f"train longer (sft.num_train_epochs: {epochs or 'default 3'} -> {2 * (epochs or 3)})"]
    cfg, n = recipe.sft_recall, int(counts.get("valid_questions") or 0)
    if cfg.target is not None and n < cfg.min_questions:
        tips.append(f"hold out more validation questions so that the check can steer extensions ({n} < "
                    f"sft_recall.min_questions {cfg.min_questions}: raise sft_recall.min_valid or valid_fraction)")
    elif cfg.target is not None and counts.get("extensions", 0) >= cfg.max_extensions:
        tips.append(f"allow more extensions (sft_recall.max_extensions: {recipe.sft_recall.max_extensions})")
    if not recipe.task.corpus_path:
        tips.append("give SFT the facts themselves (task.corpus_path: one fact per line, with task.sft_corpus: true)")
    elif not recipe.task.sft_corpus:
        tips.append("train on the fact lines too (task.sft_corpus: true)")
    return "; ".join(tips)


def mining_warnings(stats: Mapping, round_: int, recipe: Recipe) -> list[StageWarning]:
    """Too few pairs to align on, a judge that could not tell right from wrong, pairs that prefer drafts without
    their question's fact, and drafts cut by the token cap."""
    out = []
    pairs = int(stats.get("train_pairs", stats.get("pairs", 0)))
    m, minimum = recipe.mining, recipe.checks.min_pairs
    if pairs < minimum:
        tips = []
        if stats.get("stopped_by") == "budget" and m.strong_call_budget:
            tips.append(f"raise mining.strong_call_budget ({m.strong_call_budget})")
        if m.n_questions is not None:
            tips.append(f"mine more questions (mining.n_questions: {m.n_questions})")
        elif m.share < 0.5:
            tips.append(f"mine a larger share of the questions (mining.share: {m.share:g})")
        if stats.get("questions_identical_drafts"):
            redraw = m.strategy == "adaptive" and stats.get("stopped_by") == "exhausted"  # they ran out: draw again
            more = f", mining.redraws: {m.redraws}" if redraw else ""
            tips.append(f"vary the drafts more (mining.temperature: {m.temperature:g}, mining.k: {m.k}{more})")
        if m.mode == "paper" and stats.get("questions_alone_right"):
            tips.append("also pair drafts whose refinements differ where the strong model alone was right "
                        "(mining.mode: rank)")
        if wrong := int(stats.get("pairs_dropped_against_file", 0)):
            tips.append(f"{wrong} pair(s) were left out for teaching against the fact file (a chosen draft that "
                        "misstates a line, or a rejected one alone stating it): teach the facts better "
                        "(sft_recall.target) or keep them anyway (mining.drop_against_file: false)")
        if capped := int(stats.get("pairs_capped_per_fact", 0)):
            tips.append(f"{capped} training pair(s) were over the cap of pairs whose chosen draft states one fact line "
                        f"(mining.max_pairs_per_fact: {m.max_pairs_per_fact}): mine questions on more of the facts")
        tips = tips or ["bring more training questions"]
        out.append(_warn("few_pairs", (
            f"round {round_} mining: {pairs} preference pair(s) to train on (fewer than checks.min_pairs "
            f"{minimum}), so alignment is skipped and CoWest repeats refinement; {'; '.join(tips)}")))
    if stats.get("judge_rejected"):
        out.append(_warn("judge_rejected", f"round {round_} mining: {stats['evaluator_reason']}"))
    if luck := _against_fact(stats):
        out.append(_warn("pairs_against_fact", (
            f"round {round_} mining: {luck} of the pairs whose drafts differ on their question's "
            "fact prefer the draft that omits it: the strong model was right despite the chosen draft (answers "
            "among few labels often are by chance), so the feedback rewards luck about as often as facts and DPO "
            "on such pairs can teach the weak model to drop facts; mining.drop_against_fact: true leaves them out "
            "(fewer pairs remain): compare both on the held-out questions with ablations.at_budget: "
            "[drop_against_fact]")))
    n = int(stats.get("drafts_sampled", stats.get("drafts", 0)))
    sections = recipe.collab.draft_sections if "drafts_cut_shown" in stats else None
    if cut := round(n * stats.get("drafts_cut_shown", stats.get("drafts_truncated", 0.0))):
        out.append(_cut(f"round {round_} mining", cut, n, recipe.collab.draft_max_tokens, sections))
    return out


def _against_fact(stats: Mapping) -> str | None:
    """'N of M (P%)' when enough of mining's fact-split pairs prefer the draft without the fact, else None."""
    against = int(stats.get("pairs_against_fact", 0))
    split = against + int(stats.get("pairs_for_fact", 0))
    return _share(against, split) if against >= AGAINST_FACT_MIN and against >= AGAINST_FACT_SHARE * split else None


def dpo_warnings(counts: Mapping, round_: int, recipe: Recipe, mined: Mapping | None = None) -> list[StageWarning]:
    """Alignment skipped for too few pairs or undone by the DPO check; a reward margin that is not above zero (on the
    held-out pairs at the kept epoch, else the last training step), whose advice looks at the round's mining
    statistics `mined` first."""
    if counts.get("skipped_because") == "fact_recall":
        return [_warn("alignment_undone", _undone(counts["recall"], round_))]
    if counts.get("skipped_because") == "heldout_margin":
        return [_warn("alignment_undone", _undone_margin(counts["recall"], round_, recipe, mined or {}))]
    if counts.get("skipped"):
        return [_warn("alignment_skipped", (
            f"round {round_} alignment skipped: {counts.get('pairs', 0)} training pair(s), fewer than "
            f"checks.min_pairs {recipe.checks.min_pairs}; the round keeps the model it started from, so CoWest is "
            "standard refinement here and is reported as such"))]
    held, recall = counts.get("heldout") or [], counts.get("recall") or {}
    # the DPO check already paired each epoch with its held-out margin: read the kept one's there
    kept = next((e for e in recall.get("epochs", []) if e["epoch"] == recall.get("kept_epoch")
                 and e.get("heldout_margin") is not None), None)
    if kept:
        margin, where = kept["heldout_margin"], f"on the held-out pairs (epoch {kept['epoch']:g}, kept)"
    elif held:
        last = held[-1]
        margin, where = last.get("rewards/margins"), f"on the held-out pairs (epoch {last.get('epoch', 0):g}, kept)"
    else:
        margin, where = counts.get("final_margin"), "in training (last step; no held-out pairs)"
    if margin is None or margin > 0:
        return []
    head = (f"round {round_} DPO: reward margin {margin:.4f} {where} is not above zero, so the aligned model does not "
            "prefer the chosen drafts")
    if luck := _against_fact(mined or {}):
        return [_warn("flat_margin", (
            f"{head}; the pairs may hold no signal to learn: in {luck} of those whose drafts differ on the fact the "
            "chosen draft omits it (the mining warning pairs_against_fact), which a higher learning rate or more "
            "epochs cannot mend"))]
    lr = recipe.dpo.get("learning_rate", "the default")
    epochs = recipe.dpo.get("num_train_epochs", "the default")
    return [_warn("flat_margin", (
        f"{head}; check that chosen and rejected drafts differ (round_{round_}/pairs.jsonl), or "
        f"raise dpo.learning_rate ({lr}) or dpo.num_train_epochs ({epochs})"))]


def eval_warnings(results: EvalResults | Mapping, name: str, draft_max_tokens: int,
                  sections: Sequence[str] | None = None, sft_model: Collection[str] = ()) -> list[StageWarning]:
    """Aligned drafts that are (nearly) the SFT drafts, unless their variant is the SFT model by decision
    (`sft_model`: alignment skipped or undone, which its stage reported), and drafts cut by the draft token cap
    (with `collab.draft_sections`, only those cut inside the sections the strong model reads). Identical drafts
    matter only where a collaborative system of this evaluation shows them to the strong model (not in a probe of
    the weak model alone)."""
    same, cut = [], []
    res = EvalResults.of(results)
    shown = {shown_variant(n) for n in res.systems}
    for variant, d in res.drafts.items():
        n = d.n
        aligned = (variant == "aligned" or variant.startswith("round_")) and variant in shown - set(sft_model)
        if aligned and d.changed_vs_sft is not None and n:
            k = round(n * (1 - d.changed_vs_sft))
            if k >= IDENTICAL_SHARE * n:
                same.append(_warn("identical_drafts", (
                    f"{name}: {_share(k, n)} {variant} drafts are identical to the SFT drafts, so alignment "
                    "changed (almost) nothing and CoWest can only repeat refinement")))
        cut_in = sections if d.shown_cut_share is not None else None
        if k := round(n * (d.truncated_share if cut_in is None else d.shown_cut_share)):
            cut.append(_cut(f"{name}, {variant} drafts", k, n, draft_max_tokens, cut_in))
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


def _cut(where: str, cut: int, n: int, cap: int, sections: Sequence[str] | None = None) -> StageWarning:
    inside = (f"inside {', '.join(sections)} (collab.draft_sections), the part the strong model reads"
              if sections else "possibly mid-answer")
    return _warn("drafts_cut", (
        f"{where}: {_share(cut, n)} weak drafts stopped at collab.draft_max_tokens ({cap}), {inside}; "
        "raise it or shorten the draft targets"))


def collaboration_warnings(results: EvalResults | Mapping, name: str) -> list[StageWarning]:
    """Collaboration that made the strong model worse than alone on these (validation) questions."""
    res = EvalResults.of(results)
    systems = res.systems
    if "strong" not in systems:
        return []
    alone = systems["strong"].mean_score
    collab = {s: systems[s].mean_score for s in ("cowest", "refine") if s in systems}
    if not collab or max(collab.values()) >= alone:
        return []
    best = max(collab, key=lambda s: collab[s])
    return [_warn("collaboration_hurt", (
        f"{name}: the strong model alone ({100 * alone:.1f}) beats every collaboration ({best} {100 * collab[best]:.1f}) "
        f"on these {res.n} validation questions: the weak model's drafts mislead it on this domain, so "
        "`cowest serve` answers its default model with the strong model alone"))]


def _undone(recall: Mapping, round_: int) -> str:
    """Why a round's alignment was undone by the DPO check's fact recall (over the epochs its margin let through)."""
    passed = recall.get("passed_epochs")
    best = max(e["recall"] for e in recall["epochs"] if passed is None or e["epoch"] in passed)
    which = ("any epoch" if passed is None or len(passed) == len(recall["epochs"])
             else "any epoch whose held-out margin passed")
    return (f"round {round_} alignment undone: on the {recall['questions']} mining questions it did not train on, the "
            f"drafts stated their {recall.get('measure', 'fact')} on {100 * recall['start']:.1f}% before DPO and on "
            f"at most {100 * best:.1f}% after {which}, so the round keeps the model it started from and CoWest is "
            "standard refinement here, reported as such; pairs whose drafts differ in one value teach it for their own "
            f"question and can unlearn it where it is another question's fact (round_{round_}/recall.jsonl has the "
            "drafts); on rail fares neither gentler DPO (learning rate 3e-5, beta 0.5, the SFT loss alone), "
            "rehearsing SFT targets (dpo_rehearsal), leaving out pairs against the fact file "
            "(mining.drop_against_file) nor mining 59 candidate questions instead of 36 kept every fact: a value "
            "taught for one route carried to its neighbour, so on domains like it expect CoWest = refinement, whose "
            "drafts carry what SFT learnt; dpo_recall.keep: last keeps the aligned model anyway")


def _undone_margin(recall: Mapping, round_: int, recipe: Recipe, mined: Mapping) -> str:
    """Why a round's alignment was undone for its held-out margins, with advice that fits why mining stopped."""
    margins = ", ".join(f"{e['heldout_margin']:+.3f}" for e in recall["epochs"] if e.get("heldout_margin") is not None)
    m = recipe.mining
    more = {"budget": f"mining stopped at its budget: a larger mining.strong_call_budget ({m.strong_call_budget})",
            "pair_target": f"mining stopped at its target: a larger mining.pair_target ({m.pair_target})",
            "exhausted": ("mining ran out of candidate questions: more training questions like the test's, or a "
                          f"larger mining.share ({m.share})")}.get(mined.get("stopped_by", ""),
                                                                   "more mined questions")
    return (f"round {round_} alignment undone: on its {recall['heldout_pairs']} held-out pairs no epoch's reward "
            f"margin was above dpo_recall.min_heldout_margin {recall['min_heldout_margin']} ({margins} after each "
            "epoch), so the aligned model does not prefer the chosen drafts of questions it did not train on and what "
            "it learnt from its pairs does not carry; the round keeps the model it started from and CoWest is "
            f"standard refinement here, reported as such; {more} would give DPO more pairs to generalise from, and "
            "dpo_recall.min_heldout_margin: null keeps the aligned model anyway")


def fact_drop_warnings(results: EvalResults | Mapping, name: str) -> list[StageWarning]:
    """Aligned drafts that state their question's fact less often than the SFT drafts on these (validation)
    questions, by at least `FACT_DROP` points."""
    drafts = EvalResults.of(results).drafts
    sft, aligned = drafts.get("sft"), drafts.get("aligned")
    if sft is None or aligned is None or sft.states_fact is None or aligned.states_fact is None:
        return []
    drop = 100 * (sft.states_fact - aligned.states_fact)
    if drop < FACT_DROP:
        return []
    return [_warn("fact_recall_dropped", (
        f"{name}: aligned drafts state their question's fact on {100 * aligned.states_fact:.1f}% of these "
        f"{aligned.n} validation questions against the SFT drafts' {100 * sft.states_fact:.1f}%: after alignment "
        "the weak model states the facts the strong model needs less often; compare CoWest with refinement here "
        "before trusting it (`cowest serve` answers its default model with the better system on these questions), "
        "and try gentler DPO settings on them (ablations.dpo_settings)"))]


def fact_gain_warnings(results: EvalResults | Mapping, name: str) -> list[StageWarning]:
    """SFT drafts whose refinements would gain less than `FACT_GAIN` points on these (validation) questions if every
    draft stated its fact: the drafts already state it, or the strong model does no better with it."""
    sft = EvalResults.of(results).drafts.get("sft")
    if sft is None or sft.fact_gain is None or sft.states_fact is None or 100 * sft.fact_gain >= FACT_GAIN:
        return []
    without = ("no draft lacks it" if sft.scored_without_fact is None
               else f"{100 * sft.scored_without_fact:.1f}% where the draft lacks it")
    return [_warn("little_fact_gain", (
        f"{name}: the SFT drafts state their question's fact on {100 * sft.states_fact:.1f}% of these {sft.n} "
        f"validation questions, and refinement scores {100 * sft.scored_with_fact:.1f}% where the draft states it, "
        f"{without}: were every draft to state its fact, refinement would gain {100 * sft.fact_gain:+.1f} points "
        "here, so alignment has little to add by teaching facts (it can still change how drafts put them); expect "
        "CoWest close to refinement, and where the strong model errs with the fact in front of it, a stronger "
        "strong model or clearer facts help more than alignment"))]


def report(warnings: Sequence[StageWarning]) -> list[StageWarning]:
    """Log each warning (its message names the stage) and return them, for the stage's manifest."""
    for w in warnings:
        log.warning("%s", w["message"])
    return list(warnings)


def gate(stage: str, manifest: Mapping, cfg: ChecksConfig) -> None:
    """Stop the run when a stage failed its check (`STOP`), unless the recipe says `checks.on_fail: warn`."""
    failed = [w for w in (manifest.get("counts") or {}).get("warnings") or [] if w["code"] in STOP]
    if failed and cfg.on_fail == "stop":
        raise StageCheckError(f"{stage}: {failed[0]['message']}. The run stops here (checks.on_fail: warn goes on)")


def stage_warnings(manifests: Mapping[str, Mapping]) -> list[tuple[str, StageWarning]]:
    """(stage, warning) of every manifest that stored some, in the manifests' order."""
    return [(name, w) for name, m in manifests.items() for w in (m.get("counts") or {}).get("warnings") or []]
