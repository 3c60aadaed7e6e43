"""Where a run's files live: `RunLayout` names every path of a run folder and every stage manifest.

```
<run>/config.yaml  cache.sqlite  report.md  report.html  plots/<name>.png
      sft/          train.jsonl, adapter/, merged/, train_log.jsonl, trainer_config.json, recall.jsonl,
                    extensions.json (and recall_ext<N>.jsonl, train_log_ext<N>.jsonl, adapter_ext<N>/ while it
                    extends), manifest.json
      round_<k>/    drafts.jsonl, refinements.jsonl, scores.jsonl, pairs.jsonl, pairs_heldout.jsonl, heldout.json,
                    mining_stats.json, mine.manifest.json (mining); adapter/, merged/, train_log.jsonl,
                    trainer_config.json, rewards.jsonl (on-policy), dpo.manifest.json (alignment)
      eval*/        predictions.jsonl, results.json, results.md, results.csv, manifest.json
      ablations/    results.json, <tag>/ (a sub-run, laid out the same)
```

A stage's name says where its manifest is: `sft` -> sft/manifest.json, `round_1/mine` -> round_1/mine.manifest.json.
Nothing else spells these names; a training writes into a `TrainDir` (its adapter, its trainer config).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG, CACHE, MANIFEST = "config.yaml", "cache.sqlite", "manifest.json"
# The small result files of a run that `cowest publish` copies (weights, caches and training data never match).
PUBLISHED: tuple[str, ...] = (
    CONFIG, "report.md", f"*{MANIFEST}", f"*/*{MANIFEST}",
    "eval*/results.json", "eval*/results.csv", "eval*/results.md", "eval*/predictions.jsonl",
    "round_*/mining_stats.json", "round_*/pairs.jsonl", "round_*/pairs_heldout.jsonl", "round_*/heldout.json",
    "round_*/train_log.jsonl", "sft/train_log.jsonl", "ablations/results.json",
)
NEVER_PUBLISHED = {"adapter", "merged", CACHE}  # path parts never published, whatever matched


class In:
    """A file or folder of a folder object: `pairs = In("pairs.jsonl")` makes `RoundDir(d).pairs` d/pairs.jsonl."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, folder: Any, owner: type | None = None) -> Any:
        return self if folder is None else Path(folder.dir) / self.name


@dataclass(frozen=True)
class TrainDir:
    """A folder a training writes: the adapter, the trainer and PEFT configs it trained with, its log, checkpoints
    (only if a recipe turns them on), and the adapter merged into its base for the next stage."""

    dir: Path
    adapter = In("adapter")
    trainer_config = In("trainer_config.json")
    train_log = In("train_log.jsonl")
    merged = In("merged")

    def checkpoints(self) -> list[Path]:
        """The trainer's checkpoint-N folders, in step order."""
        found = [p for p in self.dir.glob("checkpoint-*") if p.name.removeprefix("checkpoint-").isdigit()]
        return sorted(found, key=lambda p: int(p.name.removeprefix("checkpoint-")))

    def drop_checkpoints(self) -> None:
        """Remove the trainer's checkpoint-N folders (call it from one process)."""
        for ckpt in self.checkpoints():
            shutil.rmtree(ckpt, ignore_errors=True)


@dataclass(frozen=True)
class SftDir(TrainDir):
    """sft/: the training rows, the adapter, and the recall check with its extensions."""

    train = In("train.jsonl")
    recall = In("recall.jsonl")  # the kept adapter's drafts on the validation questions, one row each
    extensions = In("extensions.json")

    def recall_after(self, ext: int) -> Path:
        """The recall rows after `ext` extensions."""
        return self.dir / f"recall_ext{ext}.jsonl"

    def log_of(self, ext: int) -> Path:
        """The training log of extension `ext` (0: the first training, `train_log`)."""
        return self.train_log if ext == 0 else self.dir / f"train_log_ext{ext}.jsonl"

    def adapter_after(self, ext: int) -> Path:
        """The adapter after `ext` extensions, kept while the next extension may turn out worse."""
        return self.dir / f"adapter_ext{ext}"


@dataclass(frozen=True)
class RoundDir(TrainDir):
    """round_<k>/: what mining found, and the aligned model."""

    pairs = In("pairs.jsonl")
    pairs_heldout = In("pairs_heldout.jsonl")
    heldout = In("heldout.json")  # the ids of the mined questions held out of alignment (the validation questions)
    mining_stats = In("mining_stats.json")
    rewards = In("rewards.jsonl")  # on-policy alignment's rewarded drafts
    recall = In("recall.jsonl")  # the DPO check's drafts: the starting model's and each epoch's, one row a question

    def mined(self, name: str) -> Path:
        """`drafts`, `refinements` or `scores`: every row mining wrote of that kind."""
        return self.dir / f"{name}.jsonl"


@dataclass(frozen=True)
class EvalDir:
    """An evaluation's folder (eval/, eval_valid/, ...)."""

    dir: Path
    predictions = In("predictions.jsonl")
    results = In("results.json")
    results_md = In("results.md")
    results_csv = In("results.csv")


@dataclass(frozen=True)
class ComparisonDir:
    """A `cowest compare` folder: compare.json (the data) and compare.md (its tables)."""

    dir: Path
    json = In("compare.json")
    md = In("compare.md")


class RunLayout:
    """Every path of one run folder."""

    config = In(CONFIG)
    cache = In(CACHE)
    log = In("run.log")  # cowest's lines and every warning of the stages this folder ran (not published)
    report_md = In("report.md")
    report_html = In("report.html")
    ablation_results = In("ablations/results.json")

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunLayout({str(self.root)!r})"

    @property
    def dir(self) -> Path:
        return self.root

    def plot(self, name: str) -> Path:
        return self.root / "plots" / f"{name}.png"

    @property
    def sft(self) -> SftDir:
        return SftDir(self.root / "sft")

    def round(self, k: int) -> RoundDir:
        return RoundDir(self.root / f"round_{k}")

    def eval(self, name: str) -> EvalDir:
        return EvalDir(self.root / name)

    def ablation(self, tag: str) -> RunLayout:
        """An ablation's sub-run, in ablations/<tag>."""
        return RunLayout(self.root / "ablations" / tag)

    def stage_dir(self, stage: str) -> Path:
        """The folder a stage writes: `sft`, `round_1` (for round_1/mine and round_1/dpo), `eval`, ..."""
        return self.root / stage.partition("/")[0]

    def manifest(self, stage: str) -> Path:
        """`sft` -> sft/manifest.json; `round_1/mine` -> round_1/mine.manifest.json."""
        head, _, tail = stage.partition("/")
        return self.root / head / (f"{tail}.{MANIFEST}" if tail else MANIFEST)

    def manifests(self) -> list[tuple[str, Path]]:
        """(stage, manifest path) of every stage that wrote one, in pipeline order: sft, round_K/mine, round_K/dpo,
        eval, eval_recall, then the others by name."""
        found = [(p.parent.name, p) for p in self.root.glob(f"*/{MANIFEST}")]
        found += [(f"{p.parent.name}/{p.name.removesuffix('.' + MANIFEST)}", p)
                  for p in self.root.glob(f"*/*.{MANIFEST}")]
        return sorted(found, key=lambda np_: _stage_order(np_[0]))

    def rounds(self) -> list[int]:
        """The rounds that have a folder, in order."""
        return sorted({int(m[1]) for p in self.root.glob("round_*")
                       if p.is_dir() and (m := re.fullmatch(r"round_(\d+)", p.name))})

    def evals(self) -> list[str]:
        """Evaluation folders with results: eval, eval_recall, then any other eval_* by name."""
        names = {p.parent.name for p in self.root.glob("eval*/results.json")}
        return sorted(names, key=lambda n: {"eval": (0, ""), "eval_recall": (1, "")}.get(n, (2, n)))

    def published(self) -> list[Path]:
        """The small result files `cowest publish` copies, relative to the run folder, sorted."""
        found = {p.relative_to(self.root) for pat in PUBLISHED for p in self.root.glob(pat) if p.is_file()}
        return sorted(p for p in found if not NEVER_PUBLISHED & set(p.parts))


def _stage_order(name: str) -> tuple:
    if name == "sft":
        return (0,)
    if m := re.fullmatch(r"round_(\d+)/(.+)", name):
        return (1, int(m[1]), {"mine": 0, "dpo": 1}.get(m[2], 2), m[2])
    return {"eval": (2,), "eval_recall": (3,)}.get(name, (4, name))
