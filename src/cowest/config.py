"""The recipe: one validated config object that flows from YAML to every stage."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from .errors import RecipeError
from .layout import RunLayout
from .recipe_lines import Locator, duplicate_keys
from .trainer_fields import check_passthrough

OPENAI_URL = "https://api.openai.com/v1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    """One model endpoint: a local HF model, an OpenAI-compatible server, or a managed llama.cpp server."""

    backend: Literal["hf", "openai", "llamacpp"]
    model: str  # hf: path, hub id or asset name; openai: model name; llamacpp: GGUF path or asset name
    adapter: str | None = None  # hf only: LoRA adapter directory
    # openai
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"  # name of the env var holding the key, never the key itself
    max_concurrency: int = Field(4, ge=1)
    # Retries (README, "Reliability"): a hung server costs about deadline_s, a refused connection a few seconds.
    timeout_s: float = Field(60.0, gt=0)  # one attempt
    max_retries: int = Field(5, ge=0)  # of a 429, 5xx, timeout, dropped connection or malformed reply
    connect_retries: int = Field(2, ge=0)  # of a refused or unresolvable connection, which then stops the batch
    deadline_s: float = Field(120.0, gt=0)  # all attempts of one request, backoff included
    retry_initial_s: float = Field(1.0, gt=0)  # first backoff; doubles per attempt, plus up to as much jitter
    retry_max_s: float = Field(30.0, gt=0)  # longest backoff (a server's Retry-After is honoured up to it)
    # consecutive failed requests (retries exhausted) that stop a batch, at most max_concurrency: a dead or hung
    # server fails fast (one wave of requests), not per request
    max_consecutive_failures: int = Field(5, ge=1)
    # strong model: send its requests while the weak model is still drafting. None: on for a remote server
    # (openai), off for a model sharing this machine's compute with the weak one (hf, llamacpp)
    overlap: bool | None = None
    # llamacpp
    n_ctx: int = Field(4096, ge=1)
    n_parallel: int = Field(2, ge=1)
    n_threads: int | None = Field(None, ge=1)
    # reuse the KV cache of the prompt prefix a slot shares with the request before: a little faster, but a greedy
    # answer then depends on that request (its arithmetic differs; bench/bench_prompt_cache.py measures how often)
    reuse_prefix: bool = False
    # hf
    batch_size: int = Field(16, ge=1)
    device: str = "auto"
    dtype: str = "auto"
    # cache (None: the run's cache; "off": no cache)
    cache: str | None = None

    @field_validator("cache", mode="before")
    @classmethod
    def _cache_off(cls, v: object) -> object:
        return "off" if v is False else v  # YAML reads a bare `off` (as in `--set strong.cache=off`) as false

    def endpoint(self) -> str:
        """The OpenAI-compatible base URL: `base_url`, else the OPENAI_BASE_URL environment variable (as the openai
        client itself reads it), else OpenAI's."""
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL


class TaskConfig(_Strict):
    """Which data to load and how to split it."""

    name: str  # registry key, e.g. "mmlu", "medmcqa", "ifqa", "prosocial", "jsonl", "formulary"
    path: str | None = None  # local file (overrides the packaged / hub source)
    test_path: str | None = None  # a separate test file, for sources with their own splits
    hub: str | None = None  # Hugging Face dataset id (online users)
    subjects: list[str] | None = None
    fields: dict[str, str] = Field(default_factory=dict)  # generic loaders: our field -> file column
    type: Literal["multiple_choice", "short_answer", "classification"] | None = None
    n_train: int | None = Field(None, ge=1)
    n_test: int | None = Field(None, ge=1)
    test_fraction: float = 0.3  # checked where the split is made (it names the field)
    seed: int = 0
    options: dict[str, Any] = Field(default_factory=dict)  # loader-specific knobs
    # Also SFT the weak model on the task's corpus passages (knowledge injection): true, or how many times each passage
    # is seen per epoch. A fact line is short, so repeating it is the cheapest way to the ~50 exposures a small model
    # needed to recall a number (measured: README, "What to expect on your own data").
    sft_corpus: bool | int = Field(False, ge=0)
    # The domain's own fact statements: plain text, one fact per line, or JSONL with a `text` field. They become the
    # task's corpus (retrieval baseline, task.sft_corpus) and the source of SFT backgrounds for rows without one.
    corpus_path: str | None = None


class CollabConfig(_Strict):
    """Collaborative inference: draft format and prompt overrides."""

    draft_format: Literal["direct", "knowledge", "cot"] = "cot"
    prompts: dict[str, str] = Field(default_factory=dict)  # override templates by name
    # Draft sections the strong model sees (None: the whole draft). E.g. [Background] hides the weak model's own
    # reasoning and answer, which a small strong model tends to copy instead of checking.
    draft_sections: list[str] | None = None
    draft_max_tokens: int = Field(160, ge=1)
    strong_max_tokens: int = Field(256, ge=1)
    # Token cap of the strong model's follow-up when its answer had no final-answer line (old name still read).
    reask_max_tokens: int = Field(64, ge=1, validation_alias=AliasChoices("reask_max_tokens", "weak_answer_max_tokens"))


class MiningConfig(_Strict):
    """Collaborative feedback (pair mining): which questions, drafts per question, evaluator, pairing rule, and how
    strong calls are spent."""

    k: int = Field(4, ge=1)
    temperature: float = Field(0.8, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    evaluator: Literal["rule", "judge"] = "rule"
    mode: Literal["paper", "rank"] = "paper"
    max_pairs_per_question: int = Field(2, ge=1)
    where: dict[str, Any] = Field(default_factory=dict)  # only questions whose metadata match, e.g. {kind: reasoning}
    # Share of the questions matching `where` kept out of SFT for mining, so that the weak model drafts for them as it
    # will for test questions, not from memory (a task that marks its own mining questions, sft: false, keeps them).
    share: float = Field(0.3, gt=0.0, le=1.0)
    n_questions: int | None = Field(None, ge=1)  # mine at most this many of them (None: all)
    judge_retries: int = Field(3, ge=0)
    # Share of the mined questions whose pairs DPO never trains on: they give held-out reward accuracy / margin per
    # epoch and the `eval_valid` evaluation (SFT vs aligned drafts refined), from which settings are chosen.
    heldout_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    # adaptive: draft for every question first, send the questions whose drafts disagree on the fact or differ most
    # (in what the strong model is shown) first, refine each distinct draft at most once and only while the question
    # may still give a pair, add drafts where a question's first ones split, and stop at
    # `pair_target` training pairs or `strong_call_budget` strong calls. exhaustive: every draft of every question.
    strategy: Literal["adaptive", "exhaustive"] = "adaptive"
    pair_target: int | None = Field(None, ge=1)  # None: no target, mine every question
    strong_call_budget: int | None = Field(None, ge=1)  # strong (and judge) requests; None: no budget
    extra_drafts: int = Field(4, ge=0)  # drafts added to a question whose first drafts split (adaptive)
    # When every other question has been sent and neither stop is reached, the questions whose K drafts all showed
    # the strong model one text draw K more, up to this many times, and those that now differ are sent (adaptive):
    # the budget goes to pairs instead of being left unspent (a confident SFT model repeats one Background often).
    redraws: int = Field(1, ge=0)
    # Leave out a pair whose chosen draft omits its question's checkable fact and whose rejected draft states it (the
    # strong model was right despite the chosen draft, as answers among few labels often are by chance). Off, as
    # leaving them out did not help where measured (ablations.at_budget); mining counts them and warns when many.
    drop_against_fact: bool = False
    # Leave out a pair whose chosen draft misstates a fact-file line, or whose rejected draft alone states one
    drop_against_file: bool = True
    # Train on at most this many pairs whose chosen draft states one fact-file line (0: no cap, held-out pairs never)
    max_pairs_per_fact: int = Field(6, ge=0)
    # When adaptive mining asks the strong model alone: first (before any refinement, so a question it already
    # answers perfectly costs one call; the paper's order), last (only once a question's refinements score
    # differently: refinements that all agree give no pair whatever it scores), or auto: first for the first wave,
    # then last if that wave's figures say it costs fewer calls (the strong model alone seldom right).
    alone: Literal["first", "last", "auto"] = "auto"


class SftRecallConfig(_Strict):
    """The SFT check: how often the SFT model's drafts state the right fact on validation questions it was not trained
    on, and further gentle epochs while that recall is below `target`."""

    target: float | None = Field(0.6, gt=0.0, le=1.0)  # None: measure and report only, never extend
    extra_epochs: int = Field(3, ge=1)  # each extension: this many epochs from the current adapter, fresh schedule
    max_extensions: int = Field(2, ge=0)
    # Extensions are steered only by a slice of at least this many questions: on 4, one question is 25 points of
    # recall, and both measured 4-question extensions lowered it; below it recall is measured and reported only.
    min_questions: int = Field(8, ge=1)
    # A converged adapter restarted at the full rate with fresh optimizer state forgets what it knew (measured: a
    # 75%-valid adapter fell to 0% at 1e-3), so extensions train gently: a share of the SFT rate, a longer warm-up.
    learning_rate_scale: float = Field(0.2, gt=0.0, le=1.0)
    warmup_steps: float = Field(0.1, ge=0.0)  # < 1: a fraction of the extension's steps
    # Share of the training questions (outside mining) held out of SFT as its validation slice, when the task has
    # no slice of its own (the formulary's validation wordings); at least `min_valid` questions, at most `max_valid`.
    valid_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    min_valid: int = Field(4, ge=1)
    max_valid: int = Field(48, ge=1)
    # the adapter kept is the one with the best validation recall (the later one on a tie)


class DpoRecallConfig(_Strict):
    """The DPO check: each epoch's reward margin on the held-out pairs, and how often greedy drafts state their
    question's fact on the mining questions alignment did not train on, for the model it started from and after each
    epoch (`stages/dpo_recall.py`)."""

    # best: keep, of the epochs whose held-out margin passes, the one whose drafts state facts most often (the later
    # on a tie), and undo alignment where none passes or the starting model beats it; last: keep the last epoch
    # whatever the check finds (measured, reported)
    keep: Literal["best", "last"] = "best"
    # at or below this margin the aligned model does not prefer the chosen drafts of questions it did not train on:
    # what it learnt from its pairs does not carry (None: not checked)
    min_heldout_margin: float | None = 0.0
    min_heldout_pairs: int = Field(4, ge=1)  # fewer held-out pairs measure the margin too noisily to undo on
    max_questions: int = Field(48, ge=1)  # a seeded sample beyond this: each epoch drafts once for each question
    # fewer questions cannot tell one epoch from another (on 4, one question is 25 points): measured, last kept
    min_questions: int = Field(8, ge=1)


class ChecksConfig(_Strict):
    """What each stage must show before the next one spends: below these, a run stops (or warns, `on_fail: warn`)."""

    on_fail: Literal["stop", "warn"] = "stop"
    # SFT: the share of validation drafts that state their fact. Below it the weak model has learnt (almost) none
    # of the domain, so its drafts can only add noise for the strong model.
    min_sft_recall: float = Field(0.2, ge=0.0, le=1.0)
    # Judge: before mining, its scores of gold answers against wrong ones must separate them this well (ROC AUC);
    # otherwise mining scores with the rule metric and says why.
    min_judge_auc: float = Field(0.9, ge=0.5, le=1.0)
    judge_questions: int = Field(16, ge=2)  # questions whose gold and wrong answers the judge is calibrated on
    # DPO: fewer training pairs than this cannot move the weak model measurably; alignment is skipped and CoWest is
    # refinement (reported as such).
    min_pairs: int = Field(8, ge=1)


class PriceConfig(_Strict):
    """The strong model's price, for cost per 1,000 questions."""

    prompt_per_million: float = Field(ge=0.0)  # per 1M prompt tokens
    completion_per_million: float = Field(ge=0.0)  # per 1M completion tokens
    currency: str = "USD"


class EvalConfig(_Strict):
    """Which systems to evaluate and how to summarise them."""

    systems: list[str] = Field(
        default_factory=lambda: ["weak_sft", "weak_aligned", "strong", "refine", "cowest"]
    )
    split: str = "test"
    limit: int | None = Field(None, ge=1)
    n_bootstrap: int = Field(1000, ge=1)
    confidence: float = Field(0.95, gt=0.0, lt=1.0)
    retrieval_k: int = Field(3, ge=1)  # BM25 passages shown to the strong model by the `retrieval` system
    # Token cap of every strong-model answer in evaluation (None: collab.strong_max_tokens), the same for all
    # systems, so that no baseline's chain of thought is cut where a collaborative answer is not.
    strong_max_tokens: int | None = Field(None, ge=1)
    # Also evaluate the weak variants on the task's held-out fact-recall probe, when it has one (`eval_recall`).
    recall_probe: bool = True
    price: PriceConfig | None = None


class AblationConfig(_Strict):
    """The paper's ablations, run after the main evaluation; each empty list / None is skipped."""

    formats: list[Literal["direct", "knowledge", "cot"]] = Field(default_factory=list)  # x (unaligned, aligned)
    pair_fractions: list[float] = Field(default_factory=list)  # DPO on seeded subsets of round 1's pairs
    strong: ModelConfig | None = None  # a second strong endpoint: strong alone, refinement and CoWest with it
    # Alignment settings to compare on held-out mined questions only (never the test): each entry overrides the
    # `dpo:` block (an `alignment: kto` key switches the method); DPO from the SFT model on round 1's pairs.
    dpo_settings: list[dict[str, Any]] = Field(default_factory=list)
    # Alignment at the same strong-call budget (mining.strong_call_budget), judged on the held-out mined questions:
    # offline DPO over 2 or 3 rounds (the budget split between them), on-policy GRPO and one round with
    # mining.drop_against_fact switched, beside the run's own one round.
    at_budget: list[Literal["rounds_2", "rounds_3", "grpo", "drop_against_fact"]] = Field(default_factory=list)

    @field_validator("pair_fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0.0 < f <= 1.0 for f in v):
            raise ValueError("pair fractions must be in (0, 1]")
        return v

    @property
    def any(self) -> bool:
        """Whether any ablation is configured."""
        return bool(self.formats or self.pair_fractions or self.strong or self.dpo_settings or self.at_budget)


class Recipe(_Strict):
    """A whole CoWest run."""

    name: str = "run"
    seed: int = 0
    output_dir: str = "runs"
    task: TaskConfig
    weak: ModelConfig
    strong: ModelConfig
    judge: ModelConfig | None = None  # None: the strong model judges
    collab: CollabConfig = Field(default_factory=CollabConfig)
    mining: MiningConfig = Field(default_factory=MiningConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    ablations: AblationConfig = Field(default_factory=AblationConfig)
    rounds: int = Field(1, ge=1)
    # kto: unpaired helpful / unhelpful drafts (the `dpo:` block configures it); grpo: on-policy, the weak model
    # samples drafts as it trains, rewarded by the collaborative feedback within mining.strong_call_budget (`grpo:`)
    alignment: Literal["dpo", "kto", "grpo"] = "dpo"
    # passed through to TRL / PEFT with their own field names (and meanings: per_device_train_batch_size is per
    # process); sft, dpo and grpo also take cowest's own `global_batch_size` (train/common.py: derive_batch).
    # Checked when the recipe is read (trainer_fields.py).
    sft: dict[str, Any] = Field(default_factory=dict)
    sft_recall: SftRecallConfig = Field(default_factory=SftRecallConfig)
    checks: ChecksConfig = Field(default_factory=ChecksConfig)
    dpo: dict[str, Any] = Field(default_factory=dict)
    dpo_recall: DpoRecallConfig = Field(default_factory=DpoRecallConfig)
    # SFT rows mixed into DPO per training pair as pairs with two equal sides: only the SFT term of `loss_type:
    # [sigmoid, sft]` learns from them, rehearsing the facts a few dozen pairs would overwrite (0: none)
    dpo_rehearsal: float = Field(0.0, ge=0.0)
    grpo: dict[str, Any] = Field(default_factory=dict)
    lora: dict[str, Any] = Field(default_factory=dict)

    @field_validator("dpo_rehearsal")
    @classmethod
    def _rehearsal(cls, v: float, info: ValidationInfo) -> float:
        loss = (info.data.get("dpo") or {}).get("loss_type", ["sigmoid"])
        if v > 0 and (info.data.get("alignment") != "dpo" or "sft" not in loss):
            raise ValueError("rehearsal learns through the SFT term of the DPO loss: set dpo.loss_type: [sigmoid, sft] "
                             "(alignment: dpo), or dpo_rehearsal: 0")
        return v

    @property
    def eval_collab(self) -> CollabConfig:
        """The collaboration settings answers are evaluated (and served) with: the evaluation's strong token cap."""
        cap = self.eval.strong_max_tokens
        return self.collab if cap is None else self.collab.model_copy(update={"strong_max_tokens": cap})

    @property
    def run_dir(self) -> Path:
        """Where this run writes its artifacts."""
        return Path(self.output_dir) / self.name

    def digest(self, *parts: str) -> str:
        """Short hash of the named top-level blocks (all when none given)."""
        data = self.model_dump(mode="json")
        if parts:
            data = {p: data[p] for p in parts}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def apply_override(data: dict, assignment: str) -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML."""
    if "=" not in assignment:
        raise RecipeError(f"--set {assignment!r}: expected KEY=VALUE, e.g. dpo.beta=0.2")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise RecipeError(f"--set {assignment!r}: {p!r} is not a mapping")
    try:
        node[parts[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise RecipeError(f"--set {assignment!r}: the value is not YAML: {e}") from e


def read_recipe(path: str | Path, overrides: list[str] | None = None,
                check_trainers: bool = True) -> tuple[Recipe | None, list[str]]:
    """The recipe (None if it cannot be built) and every problem found in it, each naming where (file:line, or the
    `--set` option that gave the value) and the field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        return None, [f"{path}: cannot read recipe: {e.strerror}"]
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        return None, [f"{path}: invalid YAML: {e}"]
    if not isinstance(data, dict):
        return None, [f"{path}: a recipe must be a mapping"]
    locate = Locator(path, root)
    problems = [f"{path}:{line}: field {field}: duplicate key (YAML would keep this last one and drop the other)"
                for line, field in duplicate_keys(root)]
    for o in overrides or []:
        try:
            apply_override(data, o)
            locate.overridden(o)
        except RecipeError as e:
            problems.append(str(e))
    recipe = None
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        problems += [locate.problem(err["loc"], err["msg"]) for err in e.errors()]
    if check_trainers:
        problems += check_passthrough(data, locate) or []
    return recipe, problems


def load_recipe(path: str | Path, overrides: list[str] | None = None, check_trainers: bool = True) -> Recipe:
    """Read, override and validate a YAML recipe; a RecipeError lists every problem, one a line."""
    recipe, problems = read_recipe(path, overrides, check_trainers)
    if problems or recipe is None:
        raise RecipeError("\n".join(problems))
    return recipe


def load_run_recipe(run_dir: str | Path, overrides: list[str] | None = None) -> Recipe:
    """The recipe a run folder's stages ran with (its config.yaml), its outputs placed where the folder lies."""
    run_dir, path = Path(run_dir), RunLayout(run_dir).config
    if not path.is_file():
        raise RecipeError(f"{run_dir}: no {path.name}; a run folder that `cowest run` or a stage command such as "
                          "`cowest sft` made holds one")
    where = [f"output_dir={json.dumps(str(run_dir.parent))}", f"name={json.dumps(run_dir.name)}"]
    return load_recipe(path, [*where, *(overrides or [])])


def dump_recipe(recipe: Recipe) -> str:
    """The recipe as YAML, as written into the run directory."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
