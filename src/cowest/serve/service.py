"""The served systems: which model names exist, and how each answers one question (draft, then refine)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Mapping

from ..collab.pipeline import Collaborator
from ..collab.prompter import Prompter, draft_answer_section
from ..config import CollabConfig, ModelConfig
from ..models.base import Backend, BackendError, Sampling
from ..models.cache import read_only, uncached
from ..results import VALID_EVAL
from ..systems import DEFAULT_SERVED, SERVED, SYSTEMS, System, served_systems
from ..tasks.base import Example
from .batching import DraftBatcher
from .protocol import MAX_SEED, APIError, ChatRequest, Limits, question_text, split_options

if TYPE_CHECKING:
    from ..run import Run

log = logging.getLogger(__name__)


@dataclass
class Answer:
    """One request's result: a text per choice, the draft behind them, and each model's token usage."""

    contents: list[str]
    finish: list[str | None]
    answers: list[str | None]
    draft: str | None = None
    usage: dict[str, dict[str, int]] = field(default_factory=dict)  # role -> prompt_tokens / completion_tokens

    def totals(self) -> dict[str, int]:
        """OpenAI's usage object: both models' tokens together."""
        p = sum(u["prompt_tokens"] for u in self.usage.values())
        c = sum(u["completion_tokens"] for u in self.usage.values())
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def strong_limit(cfg: ModelConfig) -> int:
    """How many strong calls may run at once: the backend's own cap (a llama.cpp server's slots; one local model)."""
    if cfg.backend == "llamacpp":
        return max(1, min(cfg.max_concurrency, cfg.n_parallel))
    return 1 if cfg.backend == "hf" else cfg.max_concurrency


class Service:
    """Answers chat requests with the run's models: one draft batcher per weak variant, a bounded strong pool."""

    def __init__(self, prompter: Prompter, cfg: CollabConfig, strong: Backend | None, weak: Mapping[str, Backend],
                 limits: Limits = Limits(), strong_concurrency: int = 4, labels: list[str] | None = None,
                 on_batch: Callable[[str, int], None] | None = None, systems: list[str] | None = None,
                 default: tuple[str, str] | None = None) -> None:
        self.systems = systems  # None: every system the models allow
        self.default = default  # (system, why): what the model name `default` answers as
        self.prompter, self.cfg, self.strong, self.limits, self.labels = prompter, cfg, strong, limits, labels
        self.weak = dict(weak)
        if "aligned" not in self.weak and "sft" in self.weak:
            self._weak_alone = "sft"
        else:
            self._weak_alone = "aligned"
        self.on_batch = on_batch
        self.collab = Collaborator(None, strong, prompter, cfg) if strong is not None else None
        # sampled answers without a seed: past the cache, so that each request draws its own
        self.fresh = Collaborator(None, uncached(strong), prompter, cfg) if strong is not None else None
        self.strong_concurrency = strong_concurrency
        self._strong_pool: ThreadPoolExecutor | None = None
        self.batchers: dict[str, DraftBatcher] = {}

    # ---- what is served
    def _variant(self, s: System) -> str | None:
        return self._weak_alone if s.kind == "weak" else s.variant

    def available(self) -> list[System]:
        """The systems this server's models can answer as."""
        out = []
        for s in served_systems():
            needs_strong = s.kind in ("collab", "strong")
            variant = self._variant(s)
            if self.systems is not None and s.name not in self.systems:
                continue
            if (not needs_strong or self.strong is not None) and (variant is None or variant in self.weak):
                out.append(s)
        chosen = next((s for s in out if self.default and s.name == self.default[0]), None)
        if chosen is not None:
            out.append(replace(chosen, name="default", description=f"{chosen.name}: {self.default[1]}"))
        return out

    def system(self, name: str) -> System:
        """The served system called `name`, or a 404 listing the others."""
        for s in self.available():
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.available())
        raise APIError(404, f"the model {name!r} does not exist on this server; models: {known}", param="model",
                       code="model_not_found")

    # ---- lifecycle (inside the event loop)
    def start(self) -> None:
        """Start the draft batchers and the strong pool."""
        self._strong_pool = ThreadPoolExecutor(max_workers=self.strong_concurrency, thread_name_prefix="cowest-strong")
        for variant, backend in self.weak.items():
            def counted(size: int, v: str = variant) -> None:
                if self.on_batch is not None:
                    self.on_batch(v, size)

            b = DraftBatcher(backend, self.limits.batch_window_s, self.limits.max_batch, counted)
            b.start()
            self.batchers[variant] = b

    async def stop(self) -> None:
        """Stop the batchers and the strong pool (the models themselves belong to the caller)."""
        for b in self.batchers.values():
            await b.stop()
        self.batchers.clear()
        if self._strong_pool is not None:
            self._strong_pool.shutdown(wait=False, cancel_futures=True)

    # ---- answering
    def example(self, req: ChatRequest) -> Example:
        """The request's question as an Example: options from `options`, trailing 'A. ...' lines, or the labels."""
        text = question_text(req)
        options = req.options
        if self.prompter.task_type.name == "multiple_choice" and options is None:
            text, options = split_options(text)
        elif self.prompter.task_type.name == "classification" and options is None:
            options = self.labels
        return Example(id="request", question=text, options=options, gold="")

    def sampling(self, req: ChatRequest, default_max: int) -> Sampling:
        """The caller's sampling; unset fields take the method's defaults (greedy, the recipe's token cap, seed 0).
        A sampled request without a seed gets a random one: it is a fresh draw, as from any sampling API."""
        seed = req.seed if req.seed is not None else (secrets.randbelow(MAX_SEED) if fresh_draw(req) else 0)
        return Sampling(temperature=req.temperature or 0.0, top_p=req.top_p or 1.0,
                        max_tokens=req.token_cap or default_max, seed=seed, stop=req.stops)

    async def answer(self, req: ChatRequest, system: System) -> Answer:
        """Answer one request as `system` (the caller bounds its time)."""
        ex = self.example(req)
        tt = self.prompter.task_type
        fresh = fresh_draw(req)
        if system.kind == "weak":
            sampling = self.sampling(req, self.cfg.draft_max_tokens)
            comps = await self._draft(self._variant(system), ex, req.n, sampling, fresh)
            return Answer([c.text for c in comps], [c.finish_reason for c in comps],
                          [tt.extract(draft_answer_section(c.text), ex) for c in comps],
                          usage={"weak": _usage(comps)})
        sampling = self.sampling(req, self.cfg.strong_max_tokens)
        draft, usage = None, {}
        if system.kind == "collab":
            # the method's stage 4: one greedy draft; the caller's sampling applies to the final answer
            comps = await self._draft(system.variant, ex, 1, Sampling(max_tokens=self.cfg.draft_max_tokens))
            draft, usage["weak"] = comps[0].text, _usage(comps)
            conv = self.prompter.strong_refine(ex, draft)
        else:
            conv = self.prompter.strong_alone(ex)
        answered = await asyncio.gather(*(self._strong(ex, conv, replace(sampling, seed=sampling.seed + j), fresh)
                                          for j in range(req.n)))
        usage["strong"] = {"prompt_tokens": sum(a.prompt_tokens for a in answered),
                           "completion_tokens": sum(a.completion_tokens for a in answered)}
        return Answer([a.text for a in answered], ["length" if a.truncated else "stop" for a in answered],
                      [a.answer for a in answered], draft, usage)

    async def _draft(self, variant: str | None, ex: Example, n: int, sampling: Sampling, fresh: bool = False) -> list:
        try:
            return await self.batchers[variant].draft(self.prompter.draft_prompt(ex), n, sampling, fresh)
        except BackendError as e:
            raise upstream_error("weak", e) from e

    async def _strong(self, ex: Example, conv: list, sampling: Sampling, fresh: bool):
        collab = self.fresh if fresh else self.collab
        assert collab is not None
        loop = asyncio.get_running_loop()
        try:
            out = await loop.run_in_executor(self._strong_pool, collab.ask_strong, [ex], [conv], sampling)
        except BackendError as e:
            raise upstream_error("strong", e) from e
        return out[0]


def fresh_draw(req: ChatRequest) -> bool:
    """Whether a request samples without a seed: its answer is a new draw, never read from or kept in a cache."""
    return bool(req.temperature) and req.seed is None


def _usage(comps: list) -> dict[str, int]:
    return {"prompt_tokens": sum(c.prompt_tokens for c in comps),
            "completion_tokens": sum(c.completion_tokens for c in comps)}


def upstream_error(role: str, e: BaseException) -> APIError:
    """A model backend's failure as the client sees it: 503 when the model cannot be reached, 504 when it timed out,
    502 for any other failure. The detail (it names internal addresses) goes to the server log only."""
    log.warning("%s model failed: %s", role, e)
    chain, c = [], e
    while c is not None and len(chain) < 10:
        chain.append(type(c).__name__)
        c = c.__cause__
    if "APITimeoutError" in chain:
        return APIError(504, f"the {role} model timed out; try again later", "timeout", code="upstream_timeout")
    if "APIConnectionError" in chain or "ConnectionError" in chain:
        return APIError(503, f"the {role} model is unavailable; try again later", "service_unavailable",
                        code="upstream_unavailable")
    return APIError(502, f"the {role} model failed to answer; try again later", "upstream_error",
                    code="upstream_error")


def service_from_run(run: Run, names: list[str] | None, limits: Limits,
                     on_batch: Callable[[str, int], None] | None = None) -> Service:
    """A Service over a run's trained models: the systems in `names` (default: every one the run can serve)."""
    from .auth import ServeConfigError

    unknown = [n for n in names or [] if n not in SERVED]
    if unknown:
        raise ServeConfigError(f"unknown model {', '.join(unknown)}; known: {', '.join(SERVED)}")
    trained = [v for v in ("sft", "aligned") if _trained(run, v)]
    wanted, variants, missing = [], [], []
    for s in (SYSTEMS[n] for n in names) if names else served_systems():
        v = _variant_in(s, trained)
        if s.variant is not None and v is None:
            missing.append(s.name)
            continue
        wanted.append(s)
        if v is not None and v not in variants:
            variants.append(v)
    if names and missing:
        raise ServeConfigError(f"{', '.join(missing)}: the run in {run.dir} has no trained weak model for it "
                               f"(finish `cowest run` first, or serve other models)")
    # the run's own answers are read from its cache (a served answer is the one `cowest eval` gave); what clients
    # ask is never added to it
    strong = read_only(run.strong) if any(s.kind != "weak" for s in wanted) else None
    weak = {v: read_only(run.weak(v)) for v in variants}
    labels = None
    if run.prompter.task_type.name == "classification":
        sets = {tuple(e.options or ()) for e in run.task.train}
        labels = list(next(iter(sets))) if len(sets) == 1 else None
    default = default_system(run, [s.name for s in wanted])
    log.info("serving %s (weak variants: %s); default: %s", ", ".join(s.name for s in wanted),
             ", ".join(variants) or "none", default[0] if default else "none")
    # serving is inference: answers get the evaluation's settings, as `cowest eval` gives them
    return Service(run.prompter, run.recipe.eval_collab, strong, weak, limits, strong_limit(run.recipe.strong), labels,
                   on_batch, systems=[s.name for s in wanted], default=default)


def default_system(run: Run, served: list[str]) -> tuple[str, str] | None:
    """What the model name `default` answers as: the system the run's validation chose, else CoWest (or refinement
    when alignment is missing), with why."""
    from ..io import read_json

    path = run.layout.manifest(VALID_EVAL)
    chosen = (read_json(path).get("counts") or {}).get("served_default") if path.exists() else None
    if chosen in served:
        return chosen, "the best of CoWest, refinement and strong alone on the run's validation questions"
    fallback = next((s for s in DEFAULT_SERVED if s in served), None)
    return (fallback, "no validation result chose one; the method's own system") if fallback else None


def _variant_in(s: System, trained: list[str]) -> str | None:
    """The trained weak variant that drafts for `s` (the weak system falls back to the SFT model)."""
    if s.kind == "weak":
        return next((v for v in ("aligned", "sft") if v in trained), None)
    return s.variant if s.variant in trained else None


def _trained(run: Run, variant: str) -> bool:
    """Whether the run holds this weak variant's adapter."""
    from pathlib import Path

    adapter = run.weak_config(variant).adapter
    return adapter is not None and Path(adapter).is_dir()
