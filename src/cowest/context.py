"""What every stage is handed: the recipe, its task and prompts, the models (opened on first use), the run
directory's ledger and the questions each stage uses."""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path

from . import dist
from .collab import Collaborator, Prompter
from .config import CollabConfig, ModelConfig, Recipe
from .io import adapter_hash, read_json
from .layout import RunLayout
from .ledger import Ledger, StageDecl, declared_files, declared_inputs
from .models import build_backend
from .models.base import Backend
from .models.shared import SharedBackend
from .roles import Questions, assign
from .systems import round_of
from .tasks import TaskData, load_task

log = logging.getLogger(__name__)


class RunContext:
    """One recipe's run directory, its data, its models and its stage ledger."""

    def __init__(self, recipe: Recipe, cache_path: Path | None = None):
        """`cache_path`: another run's call cache to share (an ablation's sub-run shares its parent's)."""
        self.recipe = recipe
        self.layout = RunLayout(recipe.run_dir)
        self.dir = self.layout.root  # made by the first file written in it: opening a run writes nothing
        self._strong: Backend | None = None
        self._judge: Backend | None = None
        self._weak_seen: list[Backend] = []  # weak variants loaded so far, for usage accounting
        self.ledger = Ledger(self.layout, self.usage)
        self._cache_path = cache_path

    # ---- data and prompts
    @cached_property
    def task(self) -> TaskData:
        """The loaded task (splits, corpus, extras); with a fact file, each question knows its reference fact."""
        from .collab.recall import attach_reference_facts

        data = load_task(self.recipe.task)
        attach_reference_facts(data.type, [*data.train, *data.test, *(e for x in data.extra.values() for e in x)],
                               data.facts)
        return data

    @cached_property
    def prompter(self) -> Prompter:
        """Prompt renderer for this task and draft format."""
        c = self.recipe.collab
        return Prompter(self.task.type, c.draft_format, c.prompts, c.draft_sections)

    @cached_property
    def questions(self) -> Questions:
        """Which training questions SFT, its validation and mining use (`roles.assign`)."""
        return assign(self.task, self.recipe)

    # ---- models
    @property
    def cache_path(self) -> Path:
        """The run's SQLite call cache."""
        return self._cache_path or self.layout.cache

    def model_dir(self, round_: int) -> Path:
        """Merged checkpoint that round `round_` (1-based) starts from: SFT for round 1, else the last aligned one."""
        k = round_ - 1
        while k >= 1 and self.alignment_skipped(k):
            k -= 1
        return (self.layout.sft if k < 1 else self.layout.round(k)).merged

    def weak_config(self, variant: str) -> ModelConfig:
        """The weak model variant: 'base', 'sft', 'aligned' (last round) or 'round_K'; a round whose alignment was
        skipped (too few pairs) is the model it started from."""
        base = self.recipe.weak
        if variant == "base":
            return base
        k = round_of(variant, self.recipe.rounds)
        while k >= 1 and self.alignment_skipped(k):
            k -= 1
        if k < 1:
            return base.model_copy(update={"adapter": str(self.layout.sft.adapter)})
        return base.model_copy(update={"model": str(self.model_dir(k)), "adapter": str(self.layout.round(k).adapter)})

    def is_sft(self, variant: str) -> bool:
        """Whether a weak variant is the SFT model (an aligned one whose every round was skipped or undone)."""
        return self.weak_config(variant) == self.weak_config("sft")

    def weak(self, variant: str) -> Backend:
        """Load a weak model variant behind the call cache."""
        backend = build_backend(self.weak_config(variant), cache_path=self.cache_path, field="weak")
        self._weak_seen.append(backend)
        return backend

    def weak_with(self, adapter: Path | None, model: Path | None = None) -> Backend:
        """The weak model (the base, or `model`) with an adapter that is not (yet) a run variant, behind the call
        cache."""
        update = {"adapter": None if adapter is None else str(adapter)}
        cfg = self.recipe.weak.model_copy(update=update | ({} if model is None else {"model": str(model)}))
        backend = build_backend(cfg, cache_path=self.cache_path, field="weak")
        self._weak_seen.append(backend)
        return backend

    @property
    def strong(self) -> Backend:
        """The strong model, started on first use."""
        if self._strong is None:
            log.info("starting strong model (%s: %s)", self.recipe.strong.backend, self.recipe.strong.model)
            self._strong = self._open(self.recipe.strong, "strong")
        return self._strong

    @property
    def judge(self) -> Backend:
        """The judge model (the strong model unless one is configured)."""
        if self.recipe.judge is None:
            return self.strong
        if self._judge is None:
            self._judge = self._open(self.recipe.judge, "judge")
        return self._judge

    def _open(self, cfg: ModelConfig, field: str) -> Backend:
        """A strong model or judge: under several processes, opened and called by the main one only."""
        if dist.active():
            return SharedBackend(lambda: build_backend(cfg, cache_path=self.cache_path, field=field))
        return build_backend(cfg, cache_path=self.cache_path, field=field)

    def release(self) -> None:
        """Stop servers and free models (before training, which needs every core)."""
        for b in (self._strong, self._judge):
            if b is not None:
                b.close()
        self._strong = self._judge = None

    def collaborator(self, weak: Backend | None, evaluation: bool = False) -> Collaborator:
        """Collaborator over the given weak model and the strong model (with the evaluation's settings if asked)."""
        cfg = self.recipe.eval_collab if evaluation else self.recipe.collab
        strong = self.recipe.strong
        overlap = strong.overlap if strong.overlap is not None else strong.backend == "openai"
        overlap = overlap and not dist.active()  # shared answers need every process to call in one order
        return Collaborator(weak, self.strong, self.prompter, cfg, overlap=overlap)

    def weak_only(self) -> Collaborator:
        """A collaborator for weak-only evaluations: no strong model is started."""
        return WeakOnly(self.prompter, self.recipe.collab)

    # ---- stage bookkeeping
    @property
    def timings(self) -> dict[str, float]:
        """Wall seconds per stage run by this object (0.0: skipped as up to date)."""
        return self.ledger.timings

    def alignment_skipped(self, round_: int) -> bool:
        """Whether round `round_`'s alignment was skipped (too few pairs) or undone (the DPO check): its weak model
        is the one it started from."""
        return bool(self._dpo_counts(round_).get("skipped"))

    def alignment_undone(self, round_: int) -> str | None:
        """Why the DPO check undid round `round_`'s trained alignment (`fact_recall`, `heldout_margin`; None: not)."""
        why = self._dpo_counts(round_).get("skipped_because")
        return why if why in ("fact_recall", "heldout_margin") else None

    def _dpo_counts(self, round_: int) -> dict:
        path = self.layout.manifest(f"round_{round_}/dpo")
        return (read_json(path).get("counts") or {}) if path.exists() else {}

    def inputs(self, decl: StageDecl, **extra: object) -> dict:
        """A stage's declared inputs: the recipe fields it reads, its upstream stages' keys, and call-time extras."""
        return dict(declared_inputs(self.recipe, decl.kind), after={a: self.ledger.key(a) for a in decl.after},
                    files=declared_files(self.recipe, decl.kind), **dict(decl.extra),
                    **extra)

    def usage(self) -> dict[str, dict]:
        """Token usage per model identity over every backend opened so far."""
        snap: dict[str, dict] = {}
        for b in (*self._weak_seen, self._strong, self._judge):
            if b is not None:
                prev = snap.get(b.identity, {})
                snap[b.identity] = {k: v + prev.get(k, 0) for k, v in b.usage.as_dict().items()}
        return snap


class WeakOnly(Collaborator):
    """A collaborator for weak-only evaluations: no strong model is started."""

    def __init__(self, prompter: Prompter, cfg: CollabConfig):
        super().__init__(None, None, prompter, cfg)  # type: ignore[arg-type]


def weak_key(cfg: ModelConfig) -> str:
    """Cache-safe identity of a weak model variant (adapter content included)."""
    return f"{cfg.model}|{adapter_hash(Path(cfg.adapter)) if cfg.adapter and Path(cfg.adapter).exists() else cfg.adapter}"

