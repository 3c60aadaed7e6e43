"""Stages re-run exactly when something they read changes: every recipe field is changed in turn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from pydantic import BaseModel

from cowest.config import Recipe
from cowest.io import hash_obj
from cowest.ledger import CALL_POLICY, NOT_READ, READS, field_keys, plan

SYSTEMS = ["weak_sft", "weak_aligned", "strong", "refine", "cowest"]
EVALS = {"eval_sft_valid": ("sft_valid", ["weak_sft"]), "eval_valid": ("valid", SYSTEMS), "eval": ("test", SYSTEMS),
         "eval_recall": ("recall", ["weak_sft", "weak_aligned"])}
MODEL = {"backend": "hf", "model": "m"}
BASE = Recipe.model_validate({
    "task": {"name": "formulary"}, "weak": MODEL, "strong": {"backend": "llamacpp", "model": "s"},
    "judge": {"backend": "openai", "model": "j"}, "ablations": {"strong": MODEL},
    "eval": {"systems": SYSTEMS, "price": {"prompt_per_million": 1.0, "completion_per_million": 2.0}},
    "sft": {"learning_rate": 1e-3}, "dpo": {"beta": 0.1, "loss_type": ["sigmoid", "sft"]}, "lora": {"r": 8},
})
# A changed value for fields whose generic change would not validate.
CHANGED: dict[str, Any] = {
    "task.type": "short_answer", "task.subjects": ["x"], "weak.backend": "openai", "strong.backend": "openai",
    "judge.backend": "hf", "ablations.strong.backend": "openai", "collab.draft_format": "knowledge",
    "collab.draft_sections": ["Background"], "mining.evaluator": "judge", "mining.mode": "rank",
    "eval.systems": SYSTEMS[:-1], "alignment": "kto", "ablations.formats": ["direct"], "ablations.pair_fractions": [0.5],
    "ablations.dpo_settings": [{"beta": 0.2}], "ablations.at_budget": ["grpo"], "sft_recall.target": 0.8, "mining.strategy": "exhaustive",
    "checks.on_fail": "warn", "checks.min_judge_auc": 0.8, "mining.alone": "first", "dpo_recall.keep": "last",
    **{f"{m}.overlap": True for m in ("weak", "strong", "judge", "ablations.strong")},
}

ALL = set(plan(BASE, EVALS))
EVALS_ = set(EVALS)
ALIGNED = {"round_1/dpo", "eval", "eval_valid", "eval_recall"}  # DPO and whatever uses the aligned model
# What each field re-runs (the longest matching prefix wins).
EXPECTED: dict[str, set[str]] = {
    **{f: set() for f in NOT_READ},
    **{f: ALL for f in ("seed", "task", "sft", "sft_recall", "lora", "weak.model", "collab.draft_format",
                        "collab.prompts", "collab.draft_max_tokens", "mining.where", "mining.share",
                        "checks.min_sft_recall")},  # SFT's questions are the ones mining does not take
    "weak": ALL - {"sft"},  # generation settings: every stage that runs the weak model
    "collab": ALL - {"sft"},
    **{f: ALL - {"sft", "eval_sft_valid"} for f in ("strong", "judge", "mining", "checks")},  # the SFT-only probe never sees them
    "alignment": ALIGNED, "dpo": ALIGNED, "dpo_recall": ALIGNED, "dpo_rehearsal": ALIGNED,
    "grpo": set(),  # read by on-policy alignment only (alignment: grpo), which BASE does not use
    "rounds": ALIGNED | {"round_2/mine", "round_2/dpo"},  # round 1 now merges; round 2 is new
    "eval": EVALS_,
}


def _leaves(model: BaseModel, prefix: str = "") -> list[str]:
    """Dotted paths of every field, descending into nested configs."""
    out = []
    for name in type(model).model_fields:
        value, path = getattr(model, name), f"{prefix}{name}"
        out += _leaves(value, path + ".") if isinstance(value, BaseModel) else [path]
    return out


def _change(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.5
    if isinstance(value, str):
        return value + "-changed"
    if isinstance(value, list):
        return value + value[:1] if value else ["x"]
    if isinstance(value, dict):
        return {**value, "changed": "x"}
    return 3  # an unset optional number / path


def _with(recipe: Recipe, path: str) -> Recipe:
    data = recipe.model_dump(mode="json")
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node[p]
    node[last] = CHANGED[path] if path in CHANGED else _change(node[last])
    if path in ("task.path", "task.test_path", "task.corpus_path", "task.hub", "weak.adapter", "weak.base_url", "weak.cache",
                "strong.adapter", "strong.base_url", "strong.cache", "judge.adapter", "judge.base_url", "judge.cache",
                "ablations.strong.adapter", "ablations.strong.base_url", "ablations.strong.cache"):
        node[last] = "changed"
    return Recipe.model_validate(data)


def _expected(path: str) -> set[str]:
    if path.rsplit(".", 1)[-1] in CALL_POLICY:  # how a model is called, not what it answers
        return set()
    for n in range(path.count(".") + 1, 0, -1):
        prefix = ".".join(path.split(".")[:n])
        if prefix in EXPECTED:
            return EXPECTED[prefix]
    raise AssertionError(f"recipe field {path!r}: declare which stages read it (stages.READS or NOT_READ)")


@pytest.mark.parametrize("path", _leaves(BASE))
def test_changing_a_field_reruns_exactly_the_stages_that_read_it(path):
    changed = _with(BASE, path)
    assert changed.model_dump() != BASE.model_dump(), path
    before = field_keys(BASE, plan(BASE, EVALS))
    after = field_keys(changed, plan(changed, EVALS))
    rerun = {s for s in after if after[s] != before.get(s)}
    assert rerun == _expected(path), path


def test_a_change_of_scoring_rules_reruns_every_stage_that_scores_and_nothing_before(monkeypatch):
    import cowest.ledger

    before = field_keys(BASE, plan(BASE, EVALS))
    monkeypatch.setattr(cowest.ledger, "SCORING", cowest.ledger.SCORING + 1)
    after = field_keys(BASE, plan(BASE, EVALS))
    # mining's scores pick the pairs, so DPO re-runs after it; SFT scores nothing
    assert {s for s in after if after[s] != before[s]} == ALL - {"sft"}


def test_on_policy_alignment_is_one_stage_a_round_that_reads_mining_and_the_models():
    grpo = BASE.model_copy(update={"alignment": "grpo"})
    stages = plan(grpo, EVALS)
    assert "round_1/mine" not in stages and stages["round_1/dpo"].kind == "grpo"
    before = field_keys(grpo, stages)
    for path in ("grpo", "mining.strong_call_budget", "strong.model", "collab.draft_max_tokens"):
        changed = _with(grpo, path) if path != "grpo" else grpo.model_copy(update={"grpo": {"beta": 0.1}})
        assert field_keys(changed, plan(changed, EVALS))["round_1/dpo"] != before["round_1/dpo"], path


def test_every_top_level_field_is_declared():
    read = {p.split(".")[0] for paths in READS.values() for p in paths} | {"rounds"}  # rounds shapes the plan itself
    assert set(Recipe.model_fields) == read | {p.split(".")[0] for p in NOT_READ}


def _keyed_plan(tmp_path: Path, task: dict) -> tuple[dict, Callable[[], dict[str, str]]]:
    """The planned stages of BASE on `task`, and a function that computes every stage's key now (files re-read)."""
    from cowest.run import Run

    recipe = Recipe.model_validate({**BASE.model_dump(), "output_dir": str(tmp_path / "runs"), "task": task})
    stages = plan(recipe, EVALS)

    def keys() -> dict[str, str]:
        run = Run(recipe)
        return {n: hash_obj(run.inputs(d)) for n, d in stages.items()}

    return stages, keys


def test_editing_a_data_row_reruns_the_stages_that_read_that_file(tmp_path):
    rows = [{"question": f"Q{i}?", "options": ["a", "b", "c"], "gold": "B"} for i in range(6)]
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    for path in (train, test):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stages, keys = _keyed_plan(tmp_path, {"name": "jsonl", "path": str(train), "test_path": str(test),
                                          "type": "multiple_choice"})
    before = keys()
    test.write_text(test.read_text().replace('"gold": "B"', '"gold": "C"', 1))
    after_test = keys()
    assert {n for n in stages if after_test[n] != before[n]} == {n for n, d in stages.items()
                                                                  if d.kind.startswith("eval")}
    train.write_text(train.read_text().replace("Q0?", "Q0, edited?"))
    after_train = keys()
    # DPO reads no data file: it follows once SFT and mining have re-run (their new keys chain into its own).
    assert {n for n in stages if after_train[n] != after_test[n]} == {"sft", "round_1/mine"} | EVALS_


def test_editing_the_fact_corpus_reruns_sft_and_the_evaluations_that_retrieve(tmp_path):
    train, corpus = tmp_path / "train.jsonl", tmp_path / "facts.txt"
    train.write_text("".join(json.dumps({"question": f"Q{i}?", "options": ["a", "b"], "gold": "A"}) + "\n"
                             for i in range(6)))
    corpus.write_text("Fact one.\nFact two.\n")
    stages, keys = _keyed_plan(tmp_path, {"name": "jsonl", "path": str(train), "corpus_path": str(corpus),
                                          "type": "multiple_choice"})
    before = keys()
    corpus.write_text("Fact one, edited.\nFact two.\n")
    after = keys()
    # Weak-only evaluations and mining read the corpus only through the SFT model (its key chains into theirs).
    assert {n for n in stages if after[n] != before[n]} == {"sft", "eval_valid", "eval"}


def test_the_plan_lists_stages_in_the_order_a_run_runs_them():
    evals = {"eval_sft_valid": ("sft_valid", ["weak_sft"]), "eval_valid": ("valid", ["weak_sft", "cowest"]),
             "eval": ("test", ["weak_sft", "cowest"])}
    assert list(plan(BASE.model_copy(update={"rounds": 1}), evals)) == [
        "sft", "eval_sft_valid", "round_1/mine", "round_1/dpo", "eval_valid", "eval"]
