"""The run: sft -> (mine -> dpo) x rounds -> eval, each stage resumable through its manifest.

The stages live in `cowest.stages`, one module each; a `Run` holds the models and the ledger (`RunContext`) and
puts the stages in the paper's order.
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import checks, dist
from .ablations import ablate
from .config import dump_recipe
from .context import RunContext
from .io import write_text
from .report import build_report
from .stages.dpo import run_dpo
from .stages.evaluate import run_eval, run_eval_recall, run_eval_sft_valid, run_eval_valid
from .stages.mine import run_mine
from .stages.sft import run_sft

log = logging.getLogger(__name__)


class Run(RunContext):
    """One recipe's run: its context plus the stages in order."""

    def sft(self) -> dict:
        """Stage 1: LoRA SFT of the weak model on draft-format targets."""
        return run_sft(self)

    def mine(self, round_: int) -> dict:
        """Stage 2: collaborative feedback with the previous round's weak model."""
        return run_mine(self, round_)

    def dpo(self, round_: int) -> dict:
        """Stage 3: preference alignment on round `round_`'s pairs."""
        return run_dpo(self, round_)

    def evaluate(self, systems: list[str] | None = None, name: str = "eval", split: str | None = None) -> dict:
        """Stage 4: the systems on a split (default: the recipe's), with CIs; writes predictions and results."""
        return run_eval(self, systems, name, split)

    def evaluate_sft_valid(self) -> dict | None:
        """The SFT model on its validation slice (`eval_sft_valid/`), before any test question."""
        return run_eval_sft_valid(self)

    def evaluate_valid(self) -> dict | None:
        """The single-model and collaboration systems on the held-out mined questions (`eval_valid/`)."""
        return run_eval_valid(self)

    def evaluate_recall(self) -> dict | None:
        """The weak models on the task's fact-recall probe (`eval_recall/`), when it has one."""
        return run_eval_recall(self)

    def train_and_evaluate(self) -> None:
        """The method's stages: sft -> (mine -> dpo) x rounds -> eval_valid (held-out mined questions) -> eval."""
        checks.gate("sft", self.sft(), self.recipe.checks)  # a weak model that learnt nothing stops the run here
        self.evaluate_sft_valid()
        for k in range(1, self.recipe.rounds + 1):
            if self.recipe.alignment != "grpo":  # on-policy alignment mines while it trains
                self.mine(k)
            self.dpo(k)
        self.evaluate_valid()
        self.evaluate()

    def run_all(self) -> dict[str, Path]:
        """sft -> (mine -> dpo) x rounds -> eval (+ the fact-recall probe when the task has one), ablations, report."""
        from .preflight import check_models

        from .eta import estimate
        from .ledger import run_plan

        dist.share(lambda: check_models(self.recipe))  # a missing key or model fails now, not after training
        stages = run_plan(self.recipe, self.task)
        self.ledger.order = list(stages)  # "[stage k/N]" in the stage lines
        self.ledger.estimates = estimate(self.recipe, self.task, self.questions, stages)  # and the time left
        self.write_config()
        try:
            self.train_and_evaluate()
            self.evaluate_recall()
            if self.recipe.ablations.any:
                self.ablate()
        finally:
            self.release()
        paths = dist.share(lambda: build_report(self.dir))
        log.info("report: %s", paths["report.html"])
        return paths

    def write_config(self) -> None:
        """Record the recipe this run's stages read as `config.yaml` (the report, serve and the benches read it)."""
        write_text(self.layout.config, dump_recipe(self.recipe))

    def ablate(self) -> dict:
        """The recipe's ablations (draft formats, pair subsets, strong swap, alignment settings)."""
        return ablate(self)
