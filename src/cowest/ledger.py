"""The stage ledger: what each stage reads, the skip key derived from it, and the manifest written when it ends.

A stage re-runs when anything it declares changes: the recipe fields it reads (`READS`), the stages it runs after
(their keys chain into its own), the content of the files it reads, and call-time extras (round, split, systems).
A recipe field that no stage reads must be listed in `NOT_READ`; `tests/test_stages.py` changes every field in turn.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from . import dist
from .config import Recipe
from .io import hash_obj, hash_path, read_json, write_json
from .layout import RunLayout
from .systems import get_systems, round_of
from .tasks.metrics import SCORING

log = logging.getLogger(__name__)

# Recipe fields (dotted paths; a section stands for all its fields) each kind of stage reads.
READS: dict[str, tuple[str, ...]] = {
    # SFT trains on the questions mining does not take (mining.where, mining.share) and checks its validation drafts
    "sft": ("seed", "task", "weak.model", "sft", "sft_recall", "lora", "collab.draft_format", "collab.prompts",
            "collab.draft_max_tokens", "mining.where", "mining.share", "checks.min_sft_recall"),
    "mine": ("seed", "task", "weak", "strong", "judge", "collab", "mining", "checks.min_judge_auc",
             "checks.judge_questions", "checks.min_pairs"),
    # its check drafts on mining's questions with mining's prompts: those fields are in the mining key it follows
    "dpo": ("seed", "alignment", "dpo", "dpo_recall", "dpo_rehearsal", "lora", "checks.min_pairs"),
    # on-policy alignment samples drafts and asks the strong model as it trains: mining's settings and the models
    "grpo": ("seed", "task", "alignment", "grpo", "lora", "weak", "strong", "judge", "collab", "mining",
             "checks.min_judge_auc", "checks.judge_questions"),
    "eval": ("seed", "task", "weak", "strong", "collab", "eval"),
    "eval_weak": ("seed", "task", "weak", "collab", "eval"),  # weak systems only: the strong model is not called
}
# Stage kinds whose outputs hold metric scores: `tasks.metrics.SCORING` is part of their inputs.
SCORED = ("mine", "grpo", "eval", "eval_weak")
# Model knobs that say how a call is made, not what it returns: changing them never re-runs a stage.
CALL_POLICY = ("api_key_env", "timeout_s", "max_retries", "deadline_s", "max_consecutive_failures", "overlap")
MODEL_FIELDS = ("weak", "strong", "judge")
# Data files (recipe fields holding a path) each kind reads; their content is part of the key. Training and mining
# read the training file only; a separate test file matters to evaluation alone. The fact corpus feeds SFT (targets'
# backgrounds, task.sft_corpus) and the retrieval baseline; mining and weak-only evaluations see it only through the
# SFT model, whose key chains into theirs.
FILES: dict[str, tuple[str, ...]] = {
    "sft": ("task.path", "task.corpus_path"), "mine": ("task.path",), "dpo": (), "grpo": ("task.path",),
    "eval": ("task.path", "task.test_path", "task.corpus_path"), "eval_weak": ("task.path", "task.test_path"),
}
# Fields no stage's output depends on: where the run is written and its name; ablations are sub-runs of their own.
NOT_READ = ("name", "output_dir", "ablations", "checks.on_fail")  # on_fail: whether a failed check stops the run


@dataclass(frozen=True)
class StageDecl:
    """One stage of a run: its kind (a key of READS) and the stages whose outputs it reads."""

    name: str
    kind: str
    after: tuple[str, ...] = ()
    extra: tuple[tuple[str, Any], ...] = ()  # what else the plan fixes, e.g. whether a round merges its model


def field_value(data: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of a dumped recipe."""
    for part in path.split("."):
        data = data[part] if data is not None else None
    return data


def declared_inputs(recipe: Recipe, kind: str) -> dict[str, Any]:
    """{field path: value} of the recipe fields a stage kind reads, and the scoring rules' version where it scores."""
    data = recipe.model_dump(mode="json")
    for m in MODEL_FIELDS:
        if data.get(m):
            data[m] = {k: v for k, v in data[m].items() if k not in CALL_POLICY}
    out = {p: field_value(data, p) for p in READS[kind]}
    return {**out, "scoring": SCORING} if kind in SCORED else out


def variant_stage(variant: str | None, rounds: int) -> str | None:
    """The stage that trains a weak model variant (None for the base model or no weak model)."""
    if variant in (None, "base"):
        return None
    if variant == "sft":
        return "sft"
    return f"round_{round_of(variant, rounds)}/dpo"


def eval_decl(name: str, split: str, systems: Sequence[str], rounds: int, alignment: str = "dpo") -> StageDecl:
    """An evaluation stage: after the stages that trained its weak variants (and the stage that held out the
    validation questions, for that split: mining, or on-policy alignment)."""
    systems_ = get_systems(systems)
    after = {variant_stage(s.variant, rounds) for s in systems_} - {None}
    if split == "valid":  # the held-out mined questions
        after.add("round_1/dpo" if alignment == "grpo" else "round_1/mine")
    kind = "eval_weak" if all(s.kind == "weak" for s in systems_) else "eval"
    return StageDecl(name, kind, tuple(sorted(after)))


def round_decls(k: int, rounds: int, alignment: str = "dpo") -> tuple[StageDecl, ...]:
    """Round k's mining and alignment, both from the SFT model (round 1) or the previous round's; on-policy
    alignment (grpo) mines as it trains, so its round is one stage (named `round_k/dpo` all the same)."""
    start = "sft" if k == 1 else f"round_{k - 1}/dpo"
    if alignment == "grpo":
        return (StageDecl(f"round_{k}/dpo", "grpo", (start,), (("round", k), ("merge", k < rounds))),)
    return (StageDecl(f"round_{k}/mine", "mine", (start,), (("round", k),)),
            StageDecl(f"round_{k}/dpo", "dpo", (start, f"round_{k}/mine"), (("round", k), ("merge", k < rounds))))


def plan(recipe: Recipe, evals: Mapping[str, tuple[str, Sequence[str]]]) -> dict[str, StageDecl]:
    """The run's stages in order; `evals` maps an evaluation's name to (split, systems)."""
    decls = {name: eval_decl(name, split, systems, recipe.rounds, recipe.alignment)
             for name, (split, systems) in evals.items()}
    # the SFT model's own evaluation runs before mining, as `Run.train_and_evaluate` orders them
    stages = [StageDecl("sft", "sft"), *[d for d in decls.values() if d.after == ("sft",)]]
    for k in range(1, recipe.rounds + 1):
        stages += round_decls(k, recipe.rounds, recipe.alignment)
    stages += [d for d in decls.values() if d not in stages]
    return {s.name: s for s in stages}


def run_plan(recipe: Recipe, task: Any) -> dict[str, StageDecl]:
    """The stages `cowest run` runs for `recipe` on `task` (its TaskData), in order: `plan` with the evaluations the
    task and recipe call for (`evaluations.evaluations`)."""
    from .evaluations import evaluations
    from .roles import assign

    return plan(recipe, evaluations(recipe, task, bool(assign(task, recipe).sft_valid)))


def field_keys(recipe: Recipe, stages: Mapping[str, StageDecl]) -> dict[str, str]:
    """Each stage's key from the recipe fields it reads and its upstream stages' keys (no files, no extras)."""
    keys: dict[str, str] = {}
    for s in stages.values():  # in order: upstream stages come first
        keys[s.name] = hash_obj(dict(reads=declared_inputs(recipe, s.kind), after={a: keys[a] for a in s.after},
                                     extra=dict(s.extra)))
    return keys


def declared_files(recipe: Recipe, kind: str) -> dict[str, str | None]:
    """Content hash of each data file a stage kind reads, by field (None: not set or missing)."""
    data = recipe.model_dump(mode="json")
    return {f: _content_hash(field_value(data, f)) for f in FILES[kind]}


def file_hashes(paths: Sequence[Path | str | None]) -> dict[str, str | None]:
    """Content hash of each input file by name (None when it does not exist); where the run lives does not count."""
    return {Path(p).name: _content_hash(p) for p in paths if p}


def _content_hash(path: Path | str | None) -> str | None:
    """hash_path of a file that exists; None for an unset or missing one."""
    return hash_path(Path(path)) if path and Path(path).exists() else None


def explain(recipe: Recipe, stages: Mapping[str, StageDecl], layout: RunLayout) -> dict[str, str]:
    """Why each stage would run, or "up to date", from its manifest: the recipe fields it reads, its data files and
    the stages it runs after (inputs known only when it runs, such as the questions drawn, are compared then)."""
    verdicts: dict[str, str] = {}
    for s in stages.values():  # in order: upstream stages come first
        path = layout.manifest(s.name)
        if not path.exists():
            verdicts[s.name] = "would run: not run yet"
            continue
        old = read_json(path).get("inputs") or {}
        upstream = [a for a in s.after if verdicts.get(a, "up to date") != "up to date"]
        fields = [f for f, v in declared_inputs(recipe, s.kind).items() if old.get(f) != v]
        files = [f for f, h in declared_files(recipe, s.kind).items() if (old.get("files") or {}).get(f) != h]
        verdicts[s.name] = (f"would run: after {', '.join(upstream)}" if upstream else
                            f"would run: changed {', '.join(fields)}" if fields else
                            f"would run: data changed ({', '.join(files)})" if files else "up to date")
    return verdicts


class Ledger:
    """A run directory's stage manifests: skip a stage whose key matches, else run it and record what it did."""

    def __init__(self, layout: RunLayout, usage: Callable[[], dict[str, dict]]):
        self.layout = layout
        self.usage = usage  # token usage per model so far, for each stage's share
        self.timings: dict[str, float] = {}
        self.order: list[str] = []  # the run's stages, for "[stage k/N]" (empty: a stage run on its own)
        self.estimates: dict[str, float] = {}  # seconds per planned stage (eta.estimate), for the run's time left

    def _label(self, name: str) -> str:
        """`[stage k/N] name` within a whole run, the bare name otherwise (a stage command, an ablation's)."""
        if name not in self.order:
            return name
        return f"[stage {self.order.index(name) + 1}/{len(self.order)}] {name}"

    def _left(self, name: str) -> str:
        """'; about N min left in the run' at a planned stage's start ('' outside a whole run)."""
        if name not in self.order or not self.estimates:
            return ""
        from .eta import say, time_left

        return f"; {say(time_left(self.estimates, self.order, self.timings, name))} left in the run"

    def key(self, name: str) -> str | None:
        """The key a finished stage ran with (None when it has not run)."""
        path = self.layout.manifest(name)
        return read_json(path)["key"] if path.exists() else None

    def run(self, name: str, inputs: dict, fn: Callable[[], dict]) -> dict:
        """Run `fn()` unless the stage's manifest matches `inputs`; the manifest is written last."""
        mpath = self.layout.manifest(name)
        key = hash_obj(inputs)
        # decided once for all processes: one that looked after another wrote the manifest would skip alone
        old = dist.share(lambda: read_json(mpath) if mpath.exists() else None)
        if old is not None and old.get("key") == key:
            log.info("%s: up to date, skipped", self._label(name))
            self.timings[name] = 0.0
            return old
        if dist.is_main():  # the run's log file: cowest's lines and every warning, whatever the console shows
            from .logs import to_file

            self.layout.root.mkdir(parents=True, exist_ok=True)
            to_file(self.layout.log)
        log.info("%s: running%s", self._label(name), self._left(name))
        t0 = time.perf_counter()
        before = self.usage()
        counts = fn()
        wall = time.perf_counter() - t0
        after = self.usage()
        manifest = dict(
            stage=name, key=key, inputs=inputs, counts=counts, wall_s=round(wall, 2), processes=dist.world_size(),
            usage={m: {k: v - before.get(m, {}).get(k, 0) for k, v in u.items()} for m, u in after.items()},
            finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        write_json(mpath, manifest)
        dist.barrier()  # under several processes: the next stage's key reads this manifest everywhere
        self.timings[name] = wall
        log.info("%s: done in %.1fs", self._label(name), wall)
        return manifest
