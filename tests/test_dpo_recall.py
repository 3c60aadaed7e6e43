"""The DPO check keeps the epoch whose drafts state facts most often on unseen mining questions, or undoes alignment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cowest.checks import dpo_warnings
from cowest.config import Recipe
from cowest.context import RunContext
from cowest.io import read_jsonl, write_json
from cowest.report.stages import stage_outcome
from cowest.stages import dpo_recall


def context(tmp_path: Path, **over) -> RunContext:
    return RunContext(Recipe.model_validate({
        "name": "r", "output_dir": str(tmp_path),
        "task": {"name": "formulary", "options": {"n_drugs": 6, "wordings_per_fact": 2, "n_mining": 12, "n_test": 4}},
        "weak": {"backend": "hf", "model": "w"}, "strong": {"backend": "hf", "model": "s"},
        "mining": {"where": {"kind": "reasoning"}, "share": 0.9}, **over}))


def checkpoints(ctx: RunContext, n: int) -> list[Path]:
    """n epoch checkpoints as the trainer saves them (3 steps an epoch), each adapter file naming its epoch."""
    out = []
    for epoch in range(1, n + 1):
        d = ctx.layout.round(1).dir / f"checkpoint-{3 * epoch}"
        d.mkdir(parents=True)
        write_json(d / "trainer_state.json", {"epoch": float(epoch)})
        (d / "adapter_model.safetensors").write_text(f"epoch {epoch}")
        (d / "adapter_config.json").write_text("{}")
        (d / "training_args.bin").write_text("trainer")
        out.append(d)
    adapter = ctx.layout.round(1).adapter
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_text(f"epoch {n}")  # the trainer's final save: the last epoch
    return out


def scripted(monkeypatch, recalls: dict[str | None, float]) -> list[tuple]:
    """measure_recall answers each adapter's recall (None: the starting model) and records what it was asked."""
    asked: list[tuple] = []

    def measure(ctx, adapter, examples, model=None):
        key = None if adapter is None else Path(adapter).name
        asked.append((key, tuple(e.id for e in examples), model))
        rows = [{"question_id": e.id, "stated": True} for e in examples]
        return dict(recall=recalls[key], accuracy=0.0, n=len(examples), measurable=True, measure="fact", rows=rows)

    monkeypatch.setattr(dpo_recall, "measure_recall", measure)
    return asked


def pairs_of(ctx: RunContext, n_questions: int) -> list[dict]:
    return [{"question_id": e.id} for e in ctx.questions.mining[:n_questions]]


def test_the_best_epoch_on_mining_questions_outside_the_pairs_is_installed_and_checkpoints_dropped(tmp_path,
                                                                                                 monkeypatch):
    ctx = context(tmp_path, dpo_recall={"min_questions": 4})
    ckpts = checkpoints(ctx, 3)
    asked = scripted(monkeypatch, {None: 0.5, "checkpoint-3": 0.6, "checkpoint-6": 0.8, "checkpoint-9": 0.7})
    rows = pairs_of(ctx, 4)
    start = tmp_path / "sft-merged"
    got = dpo_recall.keep_epoch(ctx, 1, start, rows)
    unseen = tuple(e.id for e in ctx.questions.mining[4:])
    assert len(unseen) >= 4 and all(q == unseen and m == start for _, q, m in asked)  # every arm, the same questions
    assert [a for a, _, _ in asked] == [None, "checkpoint-3", "checkpoint-6", "checkpoint-9"]
    assert got["kept_epoch"] == 2.0 and got["start"] == 0.5 and not got["undone"] and got["steered"]
    adapter = ctx.layout.round(1).adapter
    assert (adapter / "adapter_model.safetensors").read_text() == "epoch 2"
    assert not (adapter / "training_args.bin").exists()  # the trainer's files stay out of the adapter
    assert not any(c.exists() for c in ckpts)
    recall_rows = read_jsonl(ctx.layout.round(1).recall)
    assert [r["epoch"] for r in recall_rows] == [e for e in (0.0, 1.0, 2.0, 3.0) for _ in unseen]


def test_a_tie_keeps_the_later_epoch_and_a_start_model_above_every_epoch_undoes_alignment(tmp_path, monkeypatch):
    ctx = context(tmp_path, dpo_recall={"min_questions": 4})
    checkpoints(ctx, 2)
    scripted(monkeypatch, {None: 0.5, "checkpoint-3": 0.5, "checkpoint-6": 0.5})
    got = dpo_recall.keep_epoch(ctx, 1, tmp_path / "m", pairs_of(ctx, 4))
    assert got["kept_epoch"] == 2.0 and not got["undone"]  # a tie with the start model keeps alignment

    ctx = context(tmp_path / "b", dpo_recall={"min_questions": 4})
    checkpoints(ctx, 2)
    scripted(monkeypatch, {None: 0.9, "checkpoint-3": 0.6, "checkpoint-6": 0.8})
    got = dpo_recall.keep_epoch(ctx, 1, tmp_path / "m", pairs_of(ctx, 4))
    assert got["undone"] and got["kept_epoch"] == 2.0
    counts = {"pairs": 20, "steps": 10, "skipped": True, "skipped_because": "fact_recall", "recall": got}
    (w,) = dpo_warnings(counts, 1, ctx.recipe)
    assert w["code"] == "alignment_undone" and "90.0% before DPO and on at most 80.0%" in w["message"]
    assert "CoWest is standard refinement" in w["message"] and "dpo_recall.keep: last" in w["message"]
    assert "more training questions" not in w["message"]  # measured on rail fares: 59 candidates kept no more facts
    assert stage_outcome("round_1/dpo", counts).startswith("undone: 20 pairs")
    manifest = ctx.layout.manifest("round_1/dpo")
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"counts": counts}))
    assert ctx.alignment_skipped(1) and ctx.alignment_undone(1)
    assert ctx.weak_config("aligned") == ctx.weak_config("sft")  # the served and evaluated model is SFT's


@pytest.mark.parametrize("over", [{"keep": "last"}, {"min_questions": 40}])
def test_keep_last_or_too_few_questions_measure_but_keep_the_last_epoch(tmp_path, monkeypatch, over):
    ctx = context(tmp_path, dpo_recall=over)
    checkpoints(ctx, 2)
    scripted(monkeypatch, {None: 0.9, "checkpoint-3": 0.8, "checkpoint-6": 0.1})
    got = dpo_recall.keep_epoch(ctx, 1, tmp_path / "m", pairs_of(ctx, 4))
    assert got["measured"] and not got["steered"] and not got["undone"] and got["kept_epoch"] == 2.0
    assert (ctx.layout.round(1).adapter / "adapter_model.safetensors").read_text() == "epoch 2"
    assert [e["recall"] for e in got["epochs"]] == [0.8, 0.1]


def test_unseen_questions_leave_out_the_paired_ones_and_are_capped_by_a_seeded_sample(tmp_path):
    ctx = context(tmp_path, dpo_recall={"max_questions": 3})
    rows = pairs_of(ctx, 2)
    first = dpo_recall.unseen_questions(ctx, rows)
    assert len(first) == 3 and not {e.id for e in first} & {r["question_id"] for r in rows}
    assert [e.id for e in dpo_recall.unseen_questions(ctx, rows)] == [e.id for e in first]


def test_a_killed_earlier_trys_checkpoints_are_dropped_before_training(tmp_path):
    ctx = context(tmp_path)
    stale = checkpoints(ctx, 3)
    dpo_recall.drop_checkpoints(ctx.layout.round(1).dir)
    assert not any(c.exists() for c in stale) and ctx.layout.round(1).adapter.exists()


def test_checkpoints_are_listed_in_step_order_and_dropped_alone(tmp_path):
    from cowest.layout import TrainDir

    for name in ("checkpoint-10", "checkpoint-9", "checkpoint-last", "adapter"):
        (tmp_path / name).mkdir()
    folder = TrainDir(tmp_path)
    assert [c.name for c in folder.checkpoints()] == ["checkpoint-9", "checkpoint-10"]
    folder.drop_checkpoints()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter", "checkpoint-last"]


HELD = {1.0: -0.1, 2.0: 0.2, 3.0: 0.3}  # held-out reward margins after each epoch


def test_an_epoch_whose_held_out_margin_is_not_above_zero_is_never_kept(tmp_path, monkeypatch):
    ctx = context(tmp_path, dpo_recall={"min_questions": 4})
    checkpoints(ctx, 3)
    scripted(monkeypatch, {None: 0.5, "checkpoint-3": 0.9, "checkpoint-6": 0.6, "checkpoint-9": 0.7})
    got = dpo_recall.keep_epoch(ctx, 1, tmp_path / "m", pairs_of(ctx, 4), HELD, heldout_pairs=8)
    # epoch 1 states facts most often, but does not prefer the held-out chosen drafts: of the others, epoch 3
    assert got["kept_epoch"] == 3.0 and not got["undone"] and got["because"] is None
    assert [e["heldout_margin"] for e in got["epochs"]] == [-0.1, 0.2, 0.3] and got["heldout_pairs"] == 8
    assert (ctx.layout.round(1).adapter / "adapter_model.safetensors").read_text() == "epoch 3"


def test_no_epoch_preferring_held_out_chosen_drafts_undoes_alignment_and_says_why(tmp_path, monkeypatch):
    from cowest.results import EvalResults, SystemResult
    from cowest.stages.evaluate import mark_skipped_alignment

    ctx = context(tmp_path, dpo_recall={"min_questions": 4})
    checkpoints(ctx, 2)
    scripted(monkeypatch, {None: 0.5, "checkpoint-3": 0.9, "checkpoint-6": 0.9})
    got = dpo_recall.keep_epoch(ctx, 1, tmp_path / "m", pairs_of(ctx, 4), {1.0: -0.04, 2.0: 0.0}, heldout_pairs=8)
    assert got["undone"] and got["because"] == "heldout_margin"  # recall rose, yet nothing carried to held-out pairs
    counts = {"pairs": 36, "steps": 27, "skipped": True, "skipped_because": "heldout_margin", "recall": got}
    (w,) = dpo_warnings(counts, 1, ctx.recipe)
    assert w["code"] == "alignment_undone" and "on its 8 held-out pairs no epoch's reward margin" in w["message"]
    assert "-0.040, +0.000 after each epoch" in w["message"] and "min_heldout_margin: null" in w["message"]
    assert "more mined questions would give DPO more pairs" in w["message"]  # no mining figures: general advice
    budgeted = context(tmp_path / "b", mining={"where": {"kind": "reasoning"}, "share": 0.9, "strong_call_budget": 114})
    (w,) = dpo_warnings(counts, 1, budgeted.recipe, {"stopped_by": "budget"})  # the advice fits why mining stopped
    assert "mining stopped at its budget: a larger mining.strong_call_budget (114)" in w["message"]
    (w,) = dpo_warnings(counts, 1, ctx.recipe, {"stopped_by": "exhausted"})
    assert "ran out of candidate questions: more training questions like the test's, or a larger mining.share (0.9)" \
        in w["message"]
    assert stage_outcome("round_1/dpo", counts).startswith("undone: 36 pairs, 27 steps, but no epoch preferred")
    manifest = ctx.layout.manifest("round_1/dpo")
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"counts": counts}))
    assert ctx.alignment_skipped(1) and ctx.alignment_undone(1) == "heldout_margin"
    assert ctx.weak_config("aligned") == ctx.weak_config("sft")
    res = EvalResults(n=1, systems={"cowest": SystemResult(label="CoWest")})
    mark_skipped_alignment(ctx, res)
    assert res.systems["cowest"].label.endswith("(alignment skipped: no epoch preferred the held-out chosen drafts)")


@pytest.mark.parametrize("over, held", [({}, 3), ({"min_heldout_margin": None}, 8), ({"keep": "last"}, 8)])
def test_the_margin_gate_is_off_with_few_held_out_pairs_or_when_disabled(tmp_path, monkeypatch, over, held):
    ctx = context(tmp_path, dpo_recall={"min_questions": 4, **over})
    checkpoints(ctx, 3)
    scripted(monkeypatch, {None: 0.5, "checkpoint-3": 0.9, "checkpoint-6": 0.6, "checkpoint-9": 0.7})
    got = dpo_recall.keep_epoch(ctx, 1, tmp_path / "m", pairs_of(ctx, 4), {1.0: -0.1, 2.0: -0.2, 3.0: -0.3}, held)
    assert not got["undone"] and got["kept_epoch"] == (3.0 if over.get("keep") == "last" else 1.0)


RESULTS = Path(__file__).resolve().parents[1] / "results"


def published_decision(run: str) -> str | None:
    """What the check with its defaults decides from a published run's logged figures (None: alignment kept)."""
    from cowest.config import DpoRecallConfig

    counts = json.loads((RESULTS / run / "round_1/dpo.manifest.json").read_text())["counts"]
    margins = {h["epoch"]: h["rewards/margins"] for h in counts["heldout"]}
    recall = counts.get("recall") or {}
    steer = bool(recall.get("steered"))
    epochs = recall["epochs"] if recall.get("measured") else [{"epoch": e, "recall": 0.0} for e in margins]
    epochs = [{**e, "heldout_margin": dpo_recall.margin_at(margins, e["epoch"])} for e in epochs]
    held = len((RESULTS / run / "round_1/pairs_heldout.jsonl").read_text().splitlines())
    return dpo_recall.choose_epoch(recall.get("start", 0.0), epochs, DpoRecallConfig(), steer, held)[1]


def test_on_the_published_runs_the_gate_keeps_the_formularys_alignment_and_undoes_travels():
    """Every published run with held-out pairs, replayed: the formulary's alignment (CoWest - refinement +0 to +35 on
    the test) passes; on travel policy no epoch of any seed preferred the held-out chosen drafts."""
    formulary = ["formulary-seed0", "formulary-seed0-check", "formulary-seed0-current", "formulary-seed1",
                 "formulary-seed2"]
    assert all(published_decision(r) is None for r in formulary)
    travel = [f"travel-policy-seed{s}{v}" for s in range(3) for v in ("", "-whole")]
    assert all(published_decision(r) == "heldout_margin" for r in travel)
    assert [published_decision(f"rail-fares-seed{s}") for s in range(4)] == [None, "heldout_margin", None, None]
    assert published_decision("rail-fares-seed1-check") == "heldout_margin"
    assert published_decision("mmlu-nutrition-seed0") is None  # 3 held-out pairs: too few to undo on


def test_held_out_pairs_without_a_logged_margin_are_said_not_to_check(tmp_path, monkeypatch, caplog):
    ctx = context(tmp_path, dpo_recall={"min_questions": 4})
    checkpoints(ctx, 2)
    scripted(monkeypatch, {None: 0.5, "checkpoint-3": 0.6, "checkpoint-6": 0.7})
    got = dpo_recall.keep_epoch(ctx, 1, tmp_path / "m", pairs_of(ctx, 4), {1.0: 0.2}, heldout_pairs=8)
    assert got["kept_epoch"] == 1.0  # epoch 2 has no margin to pass
    assert "no reward margin was logged for epoch(s) 2" in caplog.text


def test_recall_undoes_over_the_epochs_the_margin_let_through_and_says_so(tmp_path, monkeypatch):
    ctx = context(tmp_path, dpo_recall={"min_questions": 4})
    checkpoints(ctx, 2)
    scripted(monkeypatch, {None: 0.7, "checkpoint-3": 0.9, "checkpoint-6": 0.6})
    got = dpo_recall.keep_epoch(ctx, 1, tmp_path / "m", pairs_of(ctx, 4), {1.0: -0.1, 2.0: 0.2}, heldout_pairs=8)
    assert got["undone"] and got["because"] == "fact_recall" and got["passed_epochs"] == [2.0]
    counts = {"pairs": 20, "steps": 10, "skipped": True, "skipped_because": "fact_recall", "recall": got}
    (w,) = dpo_warnings(counts, 1, ctx.recipe)  # epoch 1's 90% did not pass the margin: not offered as the best
    assert "70.0% before DPO and on at most 60.0% after any epoch whose held-out margin passed" in w["message"]


def test_rehearsal_rows_are_sft_targets_on_both_sides_never_a_mined_question(tmp_path):
    from cowest.collab.targets import rehearsal_rows

    ctx = context(tmp_path, dpo={"loss_type": ["sigmoid", "sft"]}, dpo_rehearsal=1.0)

    def rows(n: int) -> list[dict]:
        return rehearsal_rows(ctx.prompter, ctx.questions.sft, ctx.task, n, seed=0)

    assert len(rows(6)) == 6 and rows(6) == rows(6)  # a seeded sample
    assert all(r["chosen"] == r["rejected"] and r["chosen"][0]["role"] == "assistant" for r in rows(6))
    sft_prompts = [ctx.prompter.draft_prompt(e) for e in ctx.questions.sft]
    corpus = ctx.prompter.corpus_row("")["prompt"]
    assert all(r["prompt"] in sft_prompts or r["prompt"] == corpus for r in rows(6))
    mined = [ctx.prompter.draft_prompt(e) for e in ctx.questions.mining]
    assert not any(r["prompt"] in mined for r in rows(40))  # never a mined question's prompt
    more = len(ctx.questions.sft) + len(ctx.task.corpus) + 5
    assert len(rows(more)) == more and rows(0) == []  # more than there are: drawn again
