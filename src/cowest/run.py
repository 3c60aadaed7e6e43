"""The run orchestrator: sft -> (mine -> dpo) x rounds -> eval, each stage resumable through its manifest."""

from __future__ import annotations

import logging
from datetime import datetime
from functools import cached_property
from pathlib import Path

from . import checks, dist
from .collab import Collaborator, JudgeEvaluator, Prompter, RuleEvaluator, heldout_questions, mine
from .collab.targets import sft_rows
from .config import ModelConfig, Recipe, RecipeError, dump_recipe
from .errors import NoPairsError
from .io import adapter_hash, hash_obj, read_json, read_jsonl, write_json, write_jsonl, write_text
from .models import build_backend
from .models.base import Backend
from .models.shared import SharedBackend
from .report import build_report
from .stages import Ledger, StageDecl, declared_files, declared_inputs, eval_decl, file_hashes, round_decls
from .tasks import TaskData, load_task
from .tasks.base import select_where

log = logging.getLogger(__name__)


class Run:
    """One recipe's run directory, its models and its stages."""

    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self.dir = recipe.run_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self._strong: Backend | None = None
        self._judge: Backend | None = None
        self._weak_seen: list[Backend] = []  # weak variants loaded so far, for usage accounting
        self.ledger = Ledger(self.dir, self._usage)
        self._cache_path: Path | None = None  # ablation sub-runs share their parent's call cache

    # ---- data and prompts
    @cached_property
    def task(self) -> TaskData:
        """The loaded task (splits, corpus, extras)."""
        return load_task(self.recipe.task)

    @cached_property
    def prompter(self) -> Prompter:
        """Prompt renderer for this task and draft format."""
        c = self.recipe.collab
        return Prompter(self.task.type, c.draft_format, c.prompts, c.draft_sections)

    # ---- models
    @property
    def cache_path(self) -> Path:
        """The run's SQLite call cache."""
        return self._cache_path or self.dir / "cache.sqlite"

    def _model_dir(self, round_: int) -> Path:
        """Merged checkpoint that round `round_` (1-based) starts from: SFT for round 1."""
        return self.dir / ("sft" if round_ == 1 else f"round_{round_ - 1}") / "merged"

    def weak_config(self, variant: str) -> ModelConfig:
        """The weak model variant: 'base', 'sft', 'aligned' (last round) or 'round_K'."""
        base = self.recipe.weak
        if variant == "base":
            return base
        if variant == "sft":
            return base.model_copy(update={"adapter": str(self.dir / "sft" / "adapter")})
        k = self.recipe.rounds if variant == "aligned" else int(variant.removeprefix("round_"))
        return base.model_copy(
            update={"model": str(self._model_dir(k)), "adapter": str(self.dir / f"round_{k}" / "adapter")}
        )

    def weak(self, variant: str) -> Backend:
        """Load a weak model variant behind the call cache."""
        backend = build_backend(self.weak_config(variant), cache_path=self.cache_path)
        self._weak_seen.append(backend)
        return backend

    @property
    def strong(self) -> Backend:
        """The strong model, started on first use."""
        if self._strong is None:
            log.info("starting strong model (%s: %s)", self.recipe.strong.backend, self.recipe.strong.model)
            self._strong = self._open(self.recipe.strong)
        return self._strong

    @property
    def judge(self) -> Backend:
        """The judge model (the strong model unless one is configured)."""
        if self.recipe.judge is None:
            return self.strong
        if self._judge is None:
            self._judge = self._open(self.recipe.judge)
        return self._judge

    def _open(self, cfg: ModelConfig) -> Backend:
        """A strong model or judge: under several processes, opened and called by the main one only."""
        if dist.active():
            return SharedBackend(lambda: build_backend(cfg, cache_path=self.cache_path))
        return build_backend(cfg, cache_path=self.cache_path)

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

    # ---- stage bookkeeping
    @property
    def timings(self) -> dict[str, float]:
        """Wall seconds per stage run by this object (0.0: skipped as up to date)."""
        return self.ledger.timings

    def manifest_path(self, name: str) -> Path:
        """Where a stage's manifest lives."""
        return self.ledger.manifest_path(name)

    def inputs(self, decl: StageDecl, **extra: object) -> dict:
        """A stage's declared inputs: the recipe fields it reads, its upstream stages' keys, and call-time extras."""
        return dict(declared_inputs(self.recipe, decl.kind), after={a: self.ledger.key(a) for a in decl.after},
                    files=declared_files(self.recipe, decl.kind), **dict(decl.extra),
                    **extra)

    def _usage(self) -> dict[str, dict]:
        """Token usage per model identity over every backend opened so far."""
        snap: dict[str, dict] = {}
        for b in (*self._weak_seen, self._strong, self._judge):
            if b is not None:
                prev = snap.get(b.identity, {})
                snap[b.identity] = {k: v + prev.get(k, 0) for k, v in b.usage.as_dict().items()}
        return snap

    # ---- stages
    def sft(self) -> dict:
        """Stage 1: LoRA SFT of the weak model on draft-format targets."""
        from .train import merge_adapter, train_sft

        r = self.recipe
        inputs = self.inputs(StageDecl("sft", "sft"))
        if r.sft_recall.target is not None and not self.task.extra.get("sft_valid"):
            raise RecipeError(f"sft_recall.target needs a task with an SFT validation slice (the formulary task's "
                              f"validation_wordings); task {r.task.name!r} has none")

        def run(sdir: Path) -> dict:
            train = [e for e in self.task.train if e.metadata.get("sft", True)]
            rows, templated = sft_rows(self.prompter, train, self.task.facts)
            if r.task.sft_corpus:
                rows += [self.prompter.corpus_row(p) for p in self.task.corpus]
            write_jsonl(sdir / "train.jsonl", rows)
            base = self.weak_config("base")
            from .assets import resolve_model

            base_path = resolve_model(base.model, "hf")
            valid_examples = self.task.extra.get("sft_valid", [])
            valid, _ = sft_rows(self.prompter, valid_examples, self.task.facts, "SFT validation")
            adapter = train_sft(base_path, rows, sdir, r.sft, r.lora, seed=r.seed, log_path=sdir / "train_log.jsonl",
                                eval_rows=valid or None)
            extended = {}
            if r.sft_recall.target is not None:
                adapter, extended = self._extend_sft(base_path, rows, valid, valid_examples, sdir, adapter)
            merge_adapter(base_path, adapter, sdir / "merged")
            return dict(examples=len(rows), templated_backgrounds=templated, adapter_hash=adapter_hash(adapter),
                        **extended)

        return self.ledger.run("sft", self.dir / "sft", inputs, run)

    def _extend_sft(self, base_path: str, rows: list[dict], valid: list[dict], valid_examples: list, sdir: Path,
                    adapter: Path) -> tuple[Path, dict]:
        """More SFT epochs while validation accuracy is below `sft_recall.target`; keep the best adapter."""
        import shutil

        from .train import train_sft
        from .train.sft import SFT_DEFAULTS

        r, cfg = self.recipe, self.recipe.sft_recall
        history: list[dict] = []
        for ext in range(cfg.max_extensions + 1):
            acc = self._valid_accuracy(adapter, valid_examples)
            history.append({"extension": ext, "valid_accuracy": acc})
            log.info("SFT validation accuracy after %d extension(s): %.1f%% (target %.1f%%)", ext, 100 * acc,
                     100 * cfg.target)
            if acc >= cfg.target or ext == cfg.max_extensions:
                break
            keep = sdir / f"adapter_ext{ext}"  # kept in case the next is worse
            dist.share(lambda: shutil.copytree(adapter, keep, dirs_exist_ok=True))
            lr = cfg.learning_rate_scale * r.sft.get("learning_rate", SFT_DEFAULTS["learning_rate"])
            args = r.sft | {"num_train_epochs": cfg.extra_epochs, "warmup_steps": cfg.warmup_steps, "learning_rate": lr}
            adapter = train_sft(base_path, rows, sdir, args, r.lora,
                                seed=r.seed, log_path=sdir / f"train_log_ext{ext + 1}.jsonl", eval_rows=valid,
                                init_adapter=adapter)
        # the best validation accuracy; on a tie the later (longer-trained) adapter
        best = max((h["valid_accuracy"], h["extension"]) for h in history)

        def keep_best() -> None:
            if best[1] != history[-1]["extension"]:
                shutil.rmtree(adapter)
                shutil.copytree(sdir / f"adapter_ext{best[1]}", adapter)
            for ext in range(len(history)):
                shutil.rmtree(sdir / f"adapter_ext{ext}", ignore_errors=True)

        dist.share(keep_best)
        if best[0] < cfg.target:
            log.warning("SFT validation accuracy %.1f%% stays below the target %.1f%% after %d extension(s)",
                        100 * best[0], 100 * cfg.target, cfg.max_extensions)
        write_json(sdir / "extensions.json", {"target": cfg.target, "history": history, "kept": best[1]})
        return adapter, {"extensions": best[1], "valid_accuracy": best[0]}

    def _valid_accuracy(self, adapter: Path, examples: list) -> float:
        """The weak model with `adapter` answering the SFT validation questions alone: accuracy in [0, 1]."""
        from .evaluate import evaluate, get_systems

        cfg = self.recipe.weak.model_copy(update={"adapter": str(adapter)})
        backend = build_backend(cfg, cache_path=self.cache_path)
        try:
            _, results = evaluate(examples, get_systems(["weak_sft"]), lambda _: backend,
                                  _WeakOnly(self.prompter, self.recipe.collab), self.recipe.eval, seed=self.recipe.seed)
        finally:
            backend.close()
        return float(results["systems"]["weak_sft"]["score"]["value"])

    def mine(self, round_: int) -> dict:
        """Stage 2: collaborative feedback with the previous round's weak model."""
        r = self.recipe
        variant = "sft" if round_ == 1 else f"round_{round_ - 1}"
        wcfg = self.weak_config(variant)
        decl = round_decls(round_, r.rounds)[0]
        inputs = self.inputs(decl, weak_model=_weak_key(wcfg))

        def run(sdir: Path) -> dict:
            examples = select_where(self.task.train, r.mining.where)
            if r.mining.n_questions is not None:
                examples = examples[: r.mining.n_questions]
            weak = self.weak(variant)
            try:
                collab = self.collaborator(weak)
                if r.mining.evaluator == "rule":
                    evaluator = RuleEvaluator(self.prompter)
                else:
                    evaluator = JudgeEvaluator(self.judge, self.prompter, retries=r.mining.judge_retries)
                res = mine(examples, collab, evaluator, r.mining, seed=r.seed, round_=round_)
            finally:
                weak.close()
            held = set(heldout_questions([e.id for e in examples], r.mining.heldout_fraction, r.seed))
            for name in ("drafts", "refinements", "scores"):
                write_jsonl(sdir / f"{name}.jsonl", getattr(res, name))
            write_jsonl(sdir / "pairs.jsonl", [p for p in res.pairs if p["question_id"] not in held])
            write_jsonl(sdir / "pairs_heldout.jsonl", [p for p in res.pairs if p["question_id"] in held])
            res.stats.update(heldout_questions=len(held), heldout_pairs=sum(p["question_id"] in held for p in res.pairs))
            res.stats["train_pairs"] = res.stats["pairs"] - res.stats["heldout_pairs"]
            write_json(sdir / "heldout.json", sorted(held))
            write_json(sdir / "mining_stats.json", res.stats)
            log.info("mining round %d: %s", round_, ", ".join(f"{k}={_fmt(v)}" for k, v in res.stats.items()))
            warns = checks.mining_warnings(res.stats, round_, r.collab.draft_max_tokens)
            return {**res.stats, "warnings": checks.report(warns)}

        return self.ledger.run(decl.name, self.dir / f"round_{round_}", inputs, run)

    def dpo(self, round_: int) -> dict:
        """Stage 3: DPO (IPO, +SFT term, or KTO per recipe) on the mined pairs; reference = the round's start model."""
        from .train import merge_adapter, train_dpo

        self.release()
        r = self.recipe
        rdir = self.dir / f"round_{round_}"
        pairs, heldout = rdir / "pairs.jsonl", rdir / "pairs_heldout.jsonl"
        start = self._model_dir(round_)
        decl = round_decls(round_, r.rounds)[1]
        inputs = self.inputs(decl, pairs=file_hashes([pairs, heldout]))

        def run(sdir: Path) -> dict:
            rows = read_jsonl(pairs)
            if not rows:
                raise NoPairsError(
                    f"{pairs}: mining produced no preference pairs, so there is nothing to align on. "
                    "Try more drafts (mining.k), a higher mining.temperature, more questions, or mining.mode: rank."
                )
            log_path = sdir / "train_log.jsonl"
            adapter = train_dpo(str(start), pairs, sdir, r.dpo, r.lora, seed=r.seed, log_path=log_path,
                                method=r.alignment, eval_pairs=heldout if heldout.exists() else None)
            # The next round starts from this round's merged model.
            if round_ < r.rounds:
                merge_adapter(str(start), adapter, sdir / "merged")
            steps = read_jsonl(log_path) if log_path.exists() else []
            margins = [s["rewards/margins"] for s in steps if "rewards/margins" in s]
            held_epochs = [{k.removeprefix("eval_"): s[k] for k in ("epoch", "eval_rewards/accuracies",
                                                                     "eval_rewards/margins", "eval_loss") if k in s}
                           for s in steps if "eval_rewards/margins" in s]
            counts = dict(pairs=len(rows), steps=len(margins), final_margin=margins[-1] if margins else None,
                          heldout=held_epochs, adapter_hash=adapter_hash(adapter))
            return {**counts, "warnings": checks.report(checks.dpo_warnings(counts, round_))}

        return self.ledger.run(decl.name, self.dir / f"round_{round_}", inputs, run)

    def evaluate(self, systems: list[str] | None = None, name: str = "eval", split: str | None = None) -> dict:
        """Stage 4: the systems on a split (default: the recipe's), with CIs; writes predictions and results."""
        from .evaluate import comparisons_table, evaluate, get_systems, results_table

        r = self.recipe
        split = split or r.eval.split
        systems_ = get_systems(systems or self.default_systems())
        variants = sorted({s.variant for s in systems_ if s.variant})
        if split in ("test", "valid"):
            examples = self.task.test if split == "test" else self.valid_examples()
        else:
            examples = self.task.extra[split]
        if r.eval.limit is not None and split == r.eval.split:  # the limit is the recipe's split's; probes stay whole
            examples = examples[: r.eval.limit]
        best = None
        if split == "test":  # the best single model is fixed on validation data (or a priori), never on the test
            from .compare import best_single

            best = best_single(self.dir, [s.name for s in systems_])
        decl = eval_decl(name, split, [s.name for s in systems_], r.rounds)
        inputs = self.inputs(decl, split=split, systems=[s.name for s in systems_],
                             questions=hash_obj([e.id for e in examples]), best_single=best["system"] if best else None,
                             weak_models={v: _weak_key(self.weak_config(v)) for v in variants})

        def run(sdir: Path) -> dict:
            if any(s.kind != "weak" for s in systems_):
                collab = self.collaborator(None, evaluation=True)
            else:
                collab = _WeakOnly(self.prompter, r.collab)
            rows, results = evaluate(examples, systems_, self.weak, collab, r.eval, seed=r.seed, corpus=self.task.corpus,
                                     best_single=best["system"] if best else None)
            results.update(task=r.task.name, split=split, recipe=r.name, date=datetime.now().isoformat(timespec="seconds"))
            if best:
                results["best_single"] = {k: best[k] for k in ("system", "rule", "detail")}
            write_jsonl(sdir / "predictions.jsonl", rows)
            write_json(sdir / "results.json", results)
            tables = f"{results_table(results)}\n\n{comparisons_table(results)}".strip()
            write_text(sdir / "results.md", f"# {r.name}: {r.task.name} / {split} ({len(examples)} questions)\n\n{tables}\n")
            _write_csv(sdir / "results.csv", results)
            warns = checks.eval_warnings(results, name, r.collab.draft_max_tokens)
            warns += checks.shown_draft_warnings(rows, r.collab.draft_sections, name)
            return dict(questions=len(examples), systems=len(systems_), warnings=checks.report(warns))

        manifest = self.ledger.run(name, self.dir / name, inputs, run)
        log.info("%s", (self.dir / name / "results.md").read_text().strip())
        return manifest

    def valid_examples(self) -> list:
        """The mined questions held out of DPO in round 1 (validation: settings are chosen here, never on the test)."""
        path = self.dir / "round_1" / "heldout.json"
        held = set(read_json(path)) if path.exists() else set()
        return [e for e in self.task.train if e.id in held]

    def evaluate_valid(self) -> dict | None:
        """The recipe's single-model and collaboration systems on the held-out mined questions (`eval_valid/`)."""
        from .evaluate import get_systems

        if not self.valid_examples():
            return None
        names = [s.name for s in get_systems(self.default_systems()) if s.kind in ("weak", "strong", "collab")]
        return self.evaluate(names, name="eval_valid", split="valid")

    def default_systems(self) -> list[str]:
        """The recipe's eval systems, plus CoWest after each earlier round when there are several."""
        names = list(self.recipe.eval.systems)
        if self.recipe.rounds > 1 and "cowest" in names:
            names += [f"cowest_round_{k}" for k in range(1, self.recipe.rounds) if f"cowest_round_{k}" not in names]
        return names

    def ablate(self) -> dict:
        """The recipe's ablations (draft formats, pair subsets, strong swap, alignment settings)."""
        from .ablations import ablate

        return ablate(self)

    def train_and_evaluate(self) -> None:
        """The method's stages: sft -> (mine -> dpo) x rounds -> eval_valid (held-out mined questions) -> eval."""
        self.sft()
        if "sft_valid" in self.task.extra:  # fact recall on the SFT validation slice, before any test question
            self.evaluate(["weak_sft"], name="eval_sft_valid", split="sft_valid")
        for k in range(1, self.recipe.rounds + 1):
            self.mine(k)
            self.dpo(k)
        self.evaluate_valid()
        self.evaluate()

    def run_all(self) -> dict[str, Path]:
        """sft -> (mine -> dpo) x rounds -> eval (+ the fact-recall probe when the task has one), ablations, report."""
        from .preflight import check_models

        dist.share(lambda: check_models(self.recipe))  # a missing key or model fails now, not after training
        write_text(self.dir / "config.yaml", dump_recipe(self.recipe))
        try:
            self.train_and_evaluate()
            if "recall" in self.task.extra and self.recipe.eval.recall_probe:
                weak_systems = [s for s in ("weak_base", "weak_sft", "weak_aligned") if s in self.recipe.eval.systems]
                self.evaluate(weak_systems or ["weak_sft", "weak_aligned"], name="eval_recall", split="recall")
            if self.recipe.ablations.any:
                self.ablate()
        finally:
            self.release()
        paths = dist.share(lambda: build_report(self.dir))
        log.info("report: %s", paths["report.html"])
        return paths


class _WeakOnly(Collaborator):
    """A collaborator for weak-only evaluations: no strong model is started."""

    def __init__(self, prompter: Prompter, cfg):
        super().__init__(None, None, prompter, cfg)  # type: ignore[arg-type]


def _weak_key(cfg: ModelConfig) -> str:
    """Cache-safe identity of a weak model variant (adapter content included)."""
    return f"{cfg.model}|{adapter_hash(Path(cfg.adapter)) if cfg.adapter and Path(cfg.adapter).exists() else cfg.adapter}"


def _usage_delta(before: dict, after: dict) -> dict:
    return {m: {k: v - before.get(m, {}).get(k, 0) for k, v in u.items()} for m, u in after.items()}


def _fmt(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _write_csv(path: Path, results: dict) -> None:
    """The results table as CSV, from the report's one renderer."""
    from .report import results_csv

    write_text(path, results_csv(results))
