"""Loud no-ops: each check warns exactly when a stage ran but cannot have changed anything, or cut its drafts."""

from __future__ import annotations

import logging

import pytest

from cowest.checks import (
    IDENTICAL_SHARE,
    MIN_PAIRS,
    StageCheckError,
    collaboration_warnings,
    dpo_warnings,
    eval_warnings,
    fact_drop_warnings,
    fact_gain_warnings,
    gate,
    mining_warnings,
    report,
    sft_warnings,
    shown_draft_warnings,
    stage_warnings,
)
from cowest.config import Recipe


def codes(warnings: list[dict]) -> list[str]:
    return [w["code"] for w in warnings]


def recipe(**over) -> Recipe:
    model = {"backend": "hf", "model": "m"}
    return Recipe.model_validate({"task": {"name": "formulary"}, "weak": model, "strong": model, **over})


def test_few_pairs_counts_the_pairs_dpo_trains_on():
    r = recipe(collab={"draft_max_tokens": 48})
    assert codes(mining_warnings({"pairs": 20, "train_pairs": MIN_PAIRS, "drafts": 8}, 1, r)) == []
    (w,) = mining_warnings({"pairs": 20, "train_pairs": MIN_PAIRS - 1, "drafts": 8}, 1, r)
    assert w["code"] == "few_pairs" and f"{MIN_PAIRS - 1} preference pair(s)" in w["message"]
    assert "round 1 mining" in w["message"] and "alignment is skipped" in w["message"]
    assert codes(mining_warnings({"pairs": 3}, 2, r)) == ["few_pairs"]  # stats of a run without held-out pairs


def test_few_pairs_advice_fits_the_recipe_and_what_mining_saw():
    paper = recipe()
    (w,) = mining_warnings({"train_pairs": 2, "questions_alone_right": 5, "questions_identical_drafts": 9}, 1, paper)
    assert "mining.mode: rank" in w["message"] and "mining.temperature: 0.8, mining.k: 4" in w["message"]
    assert "mining.share: 0.3" in w["message"] and "mining.redraws" not in w["message"]  # not why it stopped
    (w,) = mining_warnings({"train_pairs": 2, "questions_identical_drafts": 9, "stopped_by": "exhausted"}, 1, paper)
    assert "mining.k: 4, mining.redraws: 1)" in w["message"]  # candidates ran out: drawing again finds more
    rank = recipe(mining={"mode": "rank", "n_questions": 10, "strong_call_budget": 50})
    (w,) = mining_warnings({"train_pairs": 2, "questions_alone_right": 5, "stopped_by": "budget"}, 1, rank)
    assert "mining.mode" not in w["message"]  # never advise a recipe to switch to what it already uses
    assert "mining.strong_call_budget (50)" in w["message"] and "mining.n_questions: 10" in w["message"]
    assert "mining.temperature" not in w["message"]  # its drafts did differ
    assert "fact file" not in w["message"]
    (w,) = mining_warnings({"train_pairs": 2, "pairs_dropped_against_file": 6}, 1, paper)
    assert "6 pair(s) were left out for teaching against the fact file" in w["message"]
    assert "mining.drop_against_file: false" in w["message"]
    (w,) = mining_warnings({"train_pairs": 2, "pairs_capped_per_fact": 5}, 1, paper)
    assert "5 training pair(s) were over the cap" in w["message"] and "max_pairs_per_fact: 6" in w["message"]


def test_mining_drafts_cut_by_the_cap_say_count_share_and_cap():
    r = recipe(collab={"draft_max_tokens": 48})
    (w,) = mining_warnings({"train_pairs": 40, "drafts": 192, "drafts_truncated": 12 / 192}, 1, r)
    assert w["code"] == "drafts_cut" and "12 of 192 (6.2%)" in w["message"] and "draft_max_tokens (48)" in w["message"]


def test_drafts_cut_only_in_a_hidden_section_are_not_reported_where_the_strong_model_reads_some_sections():
    # rail fares: 60% of drafts stopped in the hidden Answer line, after a whole Background
    r = recipe(collab={"draft_max_tokens": 56, "draft_sections": ["Background"]})
    stats = {"train_pairs": 40, "drafts": 188, "drafts_truncated": 112 / 188, "drafts_cut_shown": 0.0}
    assert mining_warnings(stats, 1, r) == []
    (w,) = mining_warnings({**stats, "drafts_cut_shown": 4 / 188}, 1, r)
    assert "4 of 188" in w["message"] and "inside Background (collab.draft_sections)" in w["message"]
    # mining stats stored before the count existed: every cut draft, as they were reported
    (w,) = mining_warnings({k: v for k, v in stats.items() if k != "drafts_cut_shown"}, 1, r)
    assert "112 of 188" in w["message"] and "possibly mid-answer" in w["message"]


def test_a_rejected_judge_is_reported_by_mining():
    stats = {"train_pairs": 40, "judge_rejected": True, "evaluator_reason": "the judge told gold from wrong: AUC 0.67"}
    (w,) = mining_warnings(stats, 1, recipe())
    assert w["code"] == "judge_rejected" and "AUC 0.67" in w["message"]


def test_pairs_that_prefer_drafts_without_the_fact_are_reported_when_they_are_a_quarter_of_those_split_on_it():
    # travel policy seed 1's figures: 16 of 34 pairs split on the fact preferred the draft without it
    (w,) = mining_warnings({"train_pairs": 40, "pairs_for_fact": 18, "pairs_against_fact": 16}, 1, recipe())
    assert w["code"] == "pairs_against_fact" and "16 of 34 (47.1%)" in w["message"]
    assert "mining.drop_against_fact: true" in w["message"]
    # rail fares seed 1's: 2 of 56; and too few pairs to tell
    assert mining_warnings({"train_pairs": 40, "pairs_for_fact": 54, "pairs_against_fact": 2}, 1, recipe()) == []
    assert mining_warnings({"train_pairs": 40, "pairs_for_fact": 1, "pairs_against_fact": 3}, 1, recipe()) == []


def test_dpo_margin_not_above_zero_on_held_out_pairs_else_in_training():
    r = recipe(dpo={"learning_rate": 5e-5})
    held = [{"epoch": 1.0, "rewards/margins": 0.2}, {"epoch": 2.0, "rewards/margins": 0.0}]
    (w,) = dpo_warnings({"heldout": held, "final_margin": 0.5}, 1, r)
    assert w["code"] == "flat_margin" and "0.0000 on the held-out pairs" in w["message"]
    assert "dpo.learning_rate (5e-05)" in w["message"] and "dpo.num_train_epochs (the default)" in w["message"]
    assert dpo_warnings({"heldout": held[:1], "final_margin": -0.5}, 1, r) == []  # the held-out figure decides
    # the DPO check kept epoch 1 (too few held-out pairs to undo on): its margin is the one read, not the last epoch's
    epochs = [{"epoch": 1.0, "heldout_margin": -0.05}, {"epoch": 2.0, "heldout_margin": 0.3}]
    recall = {"kept_epoch": 1.0, "epochs": epochs}
    (w,) = dpo_warnings({"heldout": held, "recall": recall}, 1, r)
    assert "-0.0500 on the held-out pairs (epoch 1, kept)" in w["message"]
    recall["epochs"][0]["heldout_margin"] = 0.1
    assert dpo_warnings({"heldout": held, "recall": recall}, 1, r) == []
    # where mining's pairs reward luck, more training is not the advice
    luck = {"pairs_for_fact": 12, "pairs_against_fact": 8}  # travel policy seed 2's mining
    (w,) = dpo_warnings({"heldout": held, "final_margin": 0.5}, 1, r, luck)
    assert "8 of 20 (40.0%)" in w["message"] and "pairs_against_fact" in w["message"]
    assert "dpo.learning_rate" not in w["message"]
    (w,) = dpo_warnings({"heldout": held, "final_margin": 0.5}, 1, r, {"pairs_for_fact": 54, "pairs_against_fact": 2})
    assert "dpo.learning_rate (5e-05)" in w["message"]
    (w,) = dpo_warnings({"heldout": [], "final_margin": -0.01}, 2, r)
    assert "round 2 DPO" in w["message"] and "in training (last step; no held-out pairs)" in w["message"]
    assert dpo_warnings({"heldout": [], "final_margin": None}, 1, r) == []


def test_skipped_alignment_says_coWest_is_refinement():
    (w,) = dpo_warnings({"skipped": True, "pairs": 3}, 1, recipe())
    assert w["code"] == "alignment_skipped" and "3 training pair(s)" in w["message"]
    assert "CoWest is standard refinement" in w["message"]


def test_sft_recall_below_the_floor_stops_the_run_below_the_target_warns():
    r = recipe()  # target 0.6, floor 0.2, a formulary task without a fact file
    counts = {"recall": 0.1, "recall_measurable": True, "valid_questions": 40, "extensions": 2}
    (w,) = sft_warnings(counts, r)
    assert w["code"] == "sft_recall_floor" and "4 of 40 (10.0%)" in w["message"]
    assert "task.corpus_path" in w["message"] and "sft_recall.max_extensions: 2" in w["message"]
    with pytest.raises(StageCheckError, match="The run stops here"):
        gate("sft", {"counts": {"warnings": [w]}}, r.checks)
    gate("sft", {"counts": {"warnings": [w]}}, recipe(checks={"on_fail": "warn"}).checks)  # warns only
    (w,) = sft_warnings({**counts, "recall": 0.5}, r)
    assert w["code"] == "sft_low_recall"
    gate("sft", {"counts": {"warnings": [w]}}, r.checks)  # below the target: the run goes on
    (w,) = sft_warnings({**counts, "recall": 0.5, "valid_questions": 4, "extensions": 0}, r)
    assert "sft_recall.min_questions 8" in w["message"] and "max_extensions" not in w["message"]  # advice that fits
    assert sft_warnings({**counts, "recall": 0.6}, r) == []
    # no fact to check: a warning only where the drafts' answers are no better than a guess
    blind = {**counts, "recall": 0.1, "recall_measurable": False, "valid_accuracy": 0.1, "valid_chance": 0.25}
    (w,) = sft_warnings(blind, r)
    assert w["code"] == "sft_chance" and "4 of 40 (10.0%)" in w["message"] and "(25.0%)" in w["message"]
    assert "task.corpus_path" in w["message"] and "max_extensions" not in w["message"]
    gate("sft", {"counts": {"warnings": [w]}}, r.checks)  # a warning, not a stop: a guess's rate is noisy
    assert sft_warnings({**blind, "valid_accuracy": 0.5}, r) == []
    (w,) = sft_warnings(blind, recipe(task={"name": "jsonl", "corpus_path": "f.txt", "type": "multiple_choice"}))
    assert "check that task.corpus_path holds the facts" in w["message"]  # advice that fits a recipe with facts
    # every target restated its answer (no fact file, no explanations): said whatever the recall
    restated = {**blind, "valid_accuracy": 0.5, "questions": {"sft": 30}, "templated_backgrounds": 30}
    (w,) = sft_warnings(restated, r)
    assert w["code"] == "sft_no_facts" and "none of the 30 training targets" in w["message"]
    assert sft_warnings({**restated, "templated_backgrounds": 29}, r) == []
    assert sft_warnings(restated, recipe(task={"name": "jsonl", "corpus_path": "f.txt", "type": "short_answer"})) == []
    with_facts = recipe(task={"name": "jsonl", "corpus_path": "f.txt", "type": "short_answer"})
    (w,) = sft_warnings(counts, with_facts)
    assert "task.sft_corpus: true" in w["message"] and "task.corpus_path" not in w["message"]


def test_collaboration_that_hurts_on_validation_is_reported():
    def res(**scores):
        return {"n": 10, "systems": {k: {"score": {"value": v}} for k, v in scores.items()}}

    (w,) = collaboration_warnings(res(strong=0.5, refine=0.3, cowest=0.4), "eval_valid")
    assert w["code"] == "collaboration_hurt" and "strong model alone (50.0)" in w["message"]
    assert collaboration_warnings(res(strong=0.5, refine=0.5, cowest=0.4), "eval_valid") == []
    assert collaboration_warnings(res(refine=0.3), "eval_valid") == []


def test_the_served_default_is_the_best_system_on_validation_cowest_on_a_tie():
    from cowest.stages.evaluate import served_default

    def res(**scores):
        return {"systems": {k: {"score": {"value": v}} for k, v in scores.items()}}

    assert served_default(res(strong=0.5, refine=0.3, cowest=0.4)) == "strong"
    assert served_default(res(strong=0.5, refine=0.5, cowest=0.5)) == "cowest"
    assert served_default(res(strong=0.5, refine=0.6, cowest=0.5, weak_sft=0.9)) == "refine"
    assert served_default(res(weak_sft=0.9)) is None


def _shown(drafts: dict, *systems: str) -> dict:
    """Evaluation results holding `drafts` and the systems that showed them (scores do not matter here)."""
    return {"drafts": drafts, "systems": {s: {"score": {"value": 0.5}} for s in systems}}


def test_aligned_drafts_identical_to_sft_drafts():
    n = 30
    almost = {"aligned": {"n": n, "changed_vs_sft": 1 / n, "truncated_share": 0.0}}
    (w,) = eval_warnings(_shown(almost, "refine", "cowest"), "eval_valid", 48)
    assert w["code"] == "identical_drafts" and w["message"].startswith("eval_valid: 29 of 30 (96.7%) aligned drafts")
    changed = 1 - IDENTICAL_SHARE + 2 / n  # 26 of 30 identical: below the threshold
    assert eval_warnings(_shown({"aligned": {"n": n, "changed_vs_sft": changed}}, "cowest"), "eval", 48) == []
    # Base drafts differ from SFT drafts by design; a later round's drafts count as aligned.
    same = {"n": n, "changed_vs_sft": 0.0}
    both = _shown({"base": same, "round_1": same}, "collab_base", "cowest_round_1")
    assert codes(eval_warnings(both, "eval", 48)) == ["identical_drafts"]
    # An aligned model that is the SFT model by decision (alignment skipped or undone) was reported by its stage.
    assert eval_warnings(_shown({"aligned": same}, "cowest"), "eval", 48, sft_model=["aligned"]) == []
    # A probe of the weak models alone shows no draft to the strong model: alike drafts cost CoWest nothing there.
    assert eval_warnings(_shown({"aligned": same}, "weak_sft", "weak_aligned"), "eval_recall", 48) == []


def _rows(sft: list[str], aligned: list[str]) -> list[dict]:
    return ([{"system": "refine", "question_id": f"q{i}", "draft": d} for i, d in enumerate(sft)]
            + [{"system": "cowest", "question_id": f"q{i}", "draft": d} for i, d in enumerate(aligned)])


def test_aligned_drafts_that_change_only_what_the_strong_model_does_not_see():
    sft = [f"Background: drug {i} takes 5 mg/kg.\nAnswer: A" for i in range(10)]
    letters = [d.replace("Answer: A", "Answer: C") for d in sft]  # only the hidden answer line moved
    (w,) = shown_draft_warnings(_rows(sft, letters), ["Background"], "eval")
    assert w["code"] == "identical_shown_drafts"
    assert w["message"].startswith("eval: 10 of 10 (100.0%) aligned drafts show the strong model the same Background")
    assert "10 changed only outside it" in w["message"]
    assert shown_draft_warnings(_rows(sft, letters), None, "eval") == []  # whole drafts shown: nothing hidden
    facts = letters[:8] + [d.replace("5 mg", "2 mg") for d in letters[8:]]  # 2 of 10 backgrounds changed
    assert codes(shown_draft_warnings(_rows(sft, facts), ["Background"], "eval")) == []
    facts = letters[:9] + [letters[9].replace("5 mg", "2 mg")]  # 9 of 10 the same: still at the 90% threshold
    assert codes(shown_draft_warnings(_rows(sft, facts), ["Background"], "eval")) == ["identical_shown_drafts"]
    # identical whole drafts are eval_warnings' identical_drafts already; not reported twice
    assert shown_draft_warnings(_rows(sft, sft), ["Background"], "eval") == []


def test_eval_drafts_cut_per_variant():
    drafts = {"sft": {"n": 40, "truncated_share": 0.075}, "aligned": {"n": 40, "truncated_share": 0.0,
                                                                        "changed_vs_sft": 0.5}}
    (w,) = eval_warnings({"drafts": drafts}, "eval", 48)
    assert w["code"] == "drafts_cut" and w["message"].startswith("eval, sft drafts: 3 of 40 (7.5%) weak drafts")


def test_eval_drafts_cut_counts_only_cuts_inside_the_shown_sections_where_they_are_set():
    drafts = {"sft": {"n": 33, "truncated_share": 22 / 33, "shown_cut_share": 0.0},
              "aligned": {"n": 33, "truncated_share": 21 / 33, "shown_cut_share": 2 / 33, "changed_vs_sft": 0.5}}
    (w,) = eval_warnings({"drafts": drafts}, "eval", 56, ["Background"])
    assert w["message"].startswith("eval, aligned drafts: 2 of 33 (6.1%)") and "inside Background" in w["message"]


def test_aligned_drafts_that_state_facts_less_often_on_validation_are_reported():
    # rail fares seed 1's held-out questions: 7 of 7 SFT drafts stated their fact, 4 of 7 aligned ones
    drafts = {"sft": {"n": 7, "states_fact": 1.0}, "aligned": {"n": 7, "states_fact": 4 / 7, "changed_vs_sft": 0.6}}
    (w,) = fact_drop_warnings({"drafts": drafts}, "eval_valid")
    assert w["code"] == "fact_recall_dropped" and "57.1% of these 7 validation questions" in w["message"]
    assert "SFT drafts' 100.0%" in w["message"]
    same = {**drafts, "aligned": {**drafts["aligned"], "states_fact": 0.95}}
    assert fact_drop_warnings({"drafts": same}, "eval_valid") == []  # within FACT_DROP
    gained = {"sft": {"n": 20, "states_fact": 0.44}, "aligned": {"n": 20, "states_fact": 0.75}}  # the formulary
    assert fact_drop_warnings({"drafts": gained}, "eval_valid") == []
    assert fact_drop_warnings({"drafts": {"sft": {"n": 7}}}, "eval_valid") == []  # nothing to compare


def test_report_logs_and_stage_warnings_reads_manifests(caplog):
    warns = mining_warnings({"train_pairs": 0}, 1, recipe())
    with caplog.at_level(logging.WARNING, logger="cowest.checks"):
        assert report(warns) == warns
    assert "round 1 mining: 0 preference pair(s)" in caplog.text
    manifests = {"sft": {"counts": {}}, "round_1/mine": {"counts": {"warnings": warns}}, "eval": {}}
    assert stage_warnings(manifests) == [("round_1/mine", warns[0])]


def test_a_run_that_changes_nothing_says_so_in_its_manifests_report_and_comparison(tmp_path, monkeypatch, caplog):
    """Fake models: the weak model writes the same short draft every time, cut at the cap, whatever its weights."""
    from fakes import ScriptedBackend

    from cowest import context as context_mod
    from cowest import run as run_mod
    from cowest.compare import compare_markdown, compare_runs
    from cowest.config import Recipe
    from cowest.report import build_report

    def fake_build(cfg, cache_path=None, field="model"):
        if cfg.backend == "openai":  # the strong model copies the draft's letter
            return ScriptedBackend(lambda c, i, s: "Final answer: A", "strong")
        return ScriptedBackend(lambda c, i, s: "Background: dose\nAnswer: A", "weak", finish_reason="length")

    monkeypatch.setattr(context_mod, "build_backend", fake_build)
    recipe = Recipe.model_validate({
        "name": "noop", "output_dir": str(tmp_path), "seed": 0,
        "task": {"name": "formulary", "options": {"n_drugs": 4, "wordings_per_fact": 2, "n_mining": 6, "n_test": 4}},
        "weak": {"backend": "hf", "model": "weak-model"},
        "strong": {"backend": "openai", "model": "strong-model", "base_url": "http://localhost:1"},
        "collab": {"draft_max_tokens": 8},
        "mining": {"k": 2, "where": {"kind": "reasoning"}},
        "eval": {"systems": ["weak_sft", "weak_aligned", "refine", "cowest"], "n_bootstrap": 50},
    })
    run = run_mod.Run(recipe)
    with caplog.at_level(logging.WARNING, logger="cowest.checks"):
        mined = run.mine(1)
        evaluated = run.evaluate()
    assert codes(mined["counts"]["warnings"]) == ["few_pairs", "drafts_cut"]
    assert codes(evaluated["counts"]["warnings"]) == ["identical_drafts", "drafts_cut", "drafts_cut"]
    assert "round 1 mining: 0 preference pair(s)" in caplog.text
    assert "eval: 4 of 4 (100.0%) aligned drafts are identical to the SFT drafts" in caplog.text
    # A skipped stage keeps the warnings it recorded when it ran.
    assert run.mine(1)["counts"]["warnings"] == mined["counts"]["warnings"]

    paths = build_report(run.dir)
    md, page = paths["report.md"].read_text(), paths["report.html"].read_text()
    block = md.split("> **Warning:")[1].split("\n\n")[0]
    assert "> - round 1 mining: 0 preference pair(s)" in block and "> - eval: 4 of 4 (100.0%) aligned" in block
    assert md.index("> **Warning:") < md.index("## Results")  # before the tables, where it is read
    assert 'id="run-warnings"' in page and "eval, sft drafts: 4 of 4 (100.0%) weak drafts stopped at" in page
    cmp = compare_markdown(compare_runs([run.dir], n_boot=50))
    assert "**Warnings**" in cmp and f"- {run.dir.name}: round 1 mining: 0 preference pair(s)" in cmp


def test_validation_where_stating_every_fact_would_gain_little_says_alignment_has_little_to_add():
    # travel policy seed 0's held-out questions: 9 of 10 SFT drafts state their fact; with it refinement scores 66.7%
    travel = {"sft": {"n": 10, "states_fact": 0.9, "scored_with_fact": 2 / 3, "scored_without_fact": 0.0,
                      "fact_gain": 0.1 * 2 / 3}}
    (w,) = fact_gain_warnings({"drafts": travel}, "eval_valid")
    assert w["code"] == "little_fact_gain" and "90.0% of these 10 validation questions" in w["message"]
    assert "66.7% where the draft states it, 0.0% where the draft lacks it" in w["message"]
    assert "+6.7 points" in w["message"]
    every = {"sft": {"n": 16, "states_fact": 1.0, "scored_with_fact": 0.75, "fact_gain": 0.0}}  # formulary seed 2
    (w,) = fact_gain_warnings({"drafts": every}, "eval_valid")
    assert "no draft lacks it" in w["message"] and "+0.0 points" in w["message"]
    # formulary seed 0: 11 of 16 state it, 90.9% right with it, none without: +28.4 points, nothing to warn of
    formulary = {"sft": {"n": 16, "states_fact": 11 / 16, "scored_with_fact": 10 / 11, "scored_without_fact": 0.0,
                         "fact_gain": 5 / 16 * 10 / 11}}
    assert fact_gain_warnings({"drafts": formulary}, "eval_valid") == []
    assert fact_gain_warnings({"drafts": {"sft": {"n": 7, "states_fact": 0.5}}}, "eval_valid") == []  # not measured
