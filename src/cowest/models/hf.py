"""Local transformers backend: batched chat generation with an optional LoRA adapter."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from cowest import dist
from cowest.config import ModelConfig
from cowest.io import adapter_hash
from cowest.models.base import BackendError, BaseBackend, Completion, Conversation, OnDone, Sampling, truncate_at_stop

log = logging.getLogger(__name__)

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}
_HASH_MEMO: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256: hash each file once per process


def resolve_device(device: str) -> torch.device:
    """`auto` means this process's GPU when there is one, else cpu; plain `cuda` is this process's GPU too."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        return torch.device("cuda", dist.local_rank())  # several processes: each on its own GPU
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype | str:
    """Config dtype name to torch; `auto`: float32 on cpu (half precision is slow there), the checkpoint's on gpu."""
    if dtype == "auto":
        return "auto" if device.type == "cuda" else torch.float32
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise BackendError(f"unknown dtype {dtype!r}; use one of auto, {', '.join(_DTYPES)}") from None


def _file_sha256(path: Path) -> str:
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key not in _HASH_MEMO:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _HASH_MEMO[memo_key] = h.hexdigest()
    return _HASH_MEMO[memo_key]


def fingerprint(path: str | Path) -> str:
    """Short content hash of a file, or of every top-level file in a directory (weights, config, tokenizer)."""
    path = Path(path)
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + _file_sha256(f).encode() + b"\0")
    return h.hexdigest()[:16]


def adapter_fingerprint(adapter: str | Path) -> str:
    """Hash of a PEFT adapter's weights and config, so a retrained adapter never hits old cache entries."""
    try:
        return adapter_hash(Path(adapter))
    except FileNotFoundError as e:
        raise BackendError(str(e)) from None


def _from_pretrained_args(source: str | Path) -> tuple[str, dict[str, Any]]:
    """A directory or hub id as is; a `.gguf` file as its directory plus `gguf_file` (transformers dequantises it)."""
    path = Path(source)
    if path.suffix == ".gguf":
        return str(path.parent), {"gguf_file": path.name}
    return str(source), {}


def load_tokenizer(source: str | Path) -> Any:
    """The tokenizer of a model directory, hub id or `.gguf` file, with eos as pad token when it has none."""
    from transformers import AutoTokenizer

    name, kwargs = _from_pretrained_args(source)
    tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(source: str | Path, device: torch.device, dtype: torch.dtype | str) -> Any:
    """A causal LM from a model directory, hub id or `.gguf` file, placed on `device`."""
    from transformers import AutoModelForCausalLM

    name, kwargs = _from_pretrained_args(source)
    return AutoModelForCausalLM.from_pretrained(name, dtype=dtype, device_map=str(device), **kwargs)


class HFBackend(BaseBackend):
    """A local transformers causal LM (optionally with a LoRA adapter) behind the Backend protocol."""

    streams_results = True  # each batch's conversations are reported as soon as the batch is generated

    def __init__(self, cfg: ModelConfig, model: Any = None, tokenizer: Any = None, field: str = "model") -> None:
        super().__init__()
        self.cfg = cfg
        source: Path | None = Path(cfg.model) if Path(cfg.model).exists() else None
        if model is None or tokenizer is None:
            from cowest.assets import missing_local, resolve_model  # lazy: the assets module pulls in packaging helpers

            if missing_local(cfg.model):  # else the hub client reports it as a malformed repo id
                raise BackendError(f"{field}.model: {cfg.model}: no such model directory")
            from cowest.models.hub import hub_problem

            # a hub id not cached, with the Hub off or unreachable: one line in seconds, not transformers' retries
            # (about 45 s) and traceback
            if problem := hub_problem(field, cfg.model):
                raise BackendError(problem)
            source = Path(resolve_model(cfg.model, "hf"))
            tokenizer = tokenizer if tokenizer is not None else load_tokenizer(source)
            if model is None:
                device = resolve_device(cfg.device)
                model = load_model(source, device, resolve_dtype(cfg.dtype, device))
        if cfg.adapter:
            from peft import PeftModel

            if not Path(cfg.adapter).is_dir():
                raise BackendError(f"adapter directory {cfg.adapter} does not exist")
            model = PeftModel.from_pretrained(model, cfg.adapter)
            if next(model.parameters()).dtype == torch.float32:
                # folded into the weights, generation skips the adapter's matmuls (1.09x the tokens/s on 2 CPU
                # cores, bench/bench_generation.py); half-precision weights would round small LoRA deltas away
                model = model.merge_and_unload()
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = next(self.model.parameters()).device

        # The tokenizer is not mutated (tests and trainers share it): eos stands in for a missing pad token here.
        eos = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        eos |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])
        if not eos:
            raise BackendError(f"{cfg.model}: the tokenizer and generation config define no eos token")
        self.eos_ids = sorted(eos)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]

        parts = [f"hf:{cfg.model}"]
        if source is not None and source.exists():  # a local model: hash its files (a hub id is its own name)
            parts.append(f"weights:{fingerprint(source)}")
        if cfg.adapter:
            parts.append(f"adapter:{adapter_fingerprint(cfg.adapter)}")
        self.identity = "|".join(parts)

    # -- prompts -------------------------------------------------------------------------------------------------

    def encode_prompt(self, conversation: Conversation) -> list[int]:
        """Token ids of a conversation rendered by the model's own chat template, ready for the assistant turn."""
        text = self.tokenizer.apply_chat_template(list(conversation), tokenize=False, add_generation_prompt=True)
        # the template already holds every special token (bos included): add none twice
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices sorted longest first (less padding; the largest batch runs first, so OOM shows early)."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        bs = max(1, self.cfg.batch_size)
        return [order[i : i + bs] for i in range(0, len(order), bs)]

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[r, width - len(s) :] = 1
        return ids.to(self.device), mask.to(self.device)

    # -- generation ----------------------------------------------------------------------------------------------

    def _generate(
        self, conversations: Sequence[Conversation], n: int, sampling: Sampling, on_done: OnDone | None = None
    ) -> list[list[Completion]]:
        """Generate `n` completions per conversation, batched; sampling is seeded per batch (seed + batch index).

        Under several processes each takes every world-th batch (same batches, same seeds: the same completions as
        one process) and all get every result, in order.
        """
        prompts = [self.encode_prompt(c) for c in conversations]
        results: list[list[Completion]] = [[] for _ in prompts]
        batches = self._batches([len(p) for p in prompts])
        mine = list(range(dist.rank(), len(batches), dist.world_size()))
        devices = [self.device] if self.device.type == "cuda" else []
        shown = None if dist.is_main() else True
        # fork_rng: seeding for reproducibility must not disturb the caller's RNG (e.g. a trainer's)
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            for b in tqdm(mine, desc=f"generate {self.cfg.model}", leave=False, disable=shown):
                torch.manual_seed(sampling.seed + b)
                for i, comps in zip(batches[b], self.generate_batch([prompts[i] for i in batches[b]], n, sampling)):
                    results[i] = comps
                    if on_done is not None and not dist.active():
                        on_done(i, comps)
        if dist.active():
            for i, comps in dist.gather([(i, results[i]) for b in mine for i in batches[b]]):
                results[i] = comps
            if on_done is not None:
                for idx in batches:
                    for i in idx:
                        on_done(i, results[i])
            dist.barrier()  # the main process has stored every result before any process looks in the cache again
        return results

    def generate_batch(self, prompts: list[list[int]], n: int, sampling: Sampling) -> list[list[Completion]]:
        """`n` completions of each of one batch of encoded prompts (left-padded together), in their order."""
        ids, mask = self._left_pad(prompts)
        greedy = sampling.temperature <= 0
        draws = 1 if greedy else n  # transformers rejects num_return_sequences > 1 for greedy: all n are equal anyway
        kwargs: dict[str, Any] = dict(
            max_new_tokens=sampling.max_tokens,
            num_return_sequences=draws,
            do_sample=not greedy,
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
        )
        if not greedy:
            # top_k=0: Sampling is temperature + nucleus only, as in the OpenAI API (not the model's top_k default)
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        if sampling.stop:
            # stop early to save compute; the text is cut at the stop string below in any case
            kwargs.update(stop_strings=list(sampling.stop), tokenizer=self.tokenizer)
        out = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        new = out[:, ids.shape[1] :].tolist()  # rows: prompt 0 draws 0..d-1, prompt 1 draws 0..d-1, ...
        ends = set(self.eos_ids) | {self.pad_id}
        comps: list[list[Completion]] = []
        for r, prompt in enumerate(prompts):
            row_comps = []
            for toks in new[r * draws : (r + 1) * draws]:
                count = next((k for k, t in enumerate(toks) if t in ends), len(toks))
                text = self.tokenizer.decode(toks[:count], skip_special_tokens=True)
                text, stopped = truncate_at_stop(text, sampling.stop)
                finish = "length" if count >= sampling.max_tokens and not stopped else "stop"
                row_comps.append(Completion(text, len(prompt), count, finish))
            comps.append([replace(row_comps[0]) for _ in range(n)] if greedy else row_comps)
        return comps

    # -- scoring -------------------------------------------------------------------------------------------------

    def logprobs_of_options(
        self, conversations: Sequence[Conversation], options: list[str], prefixes: Sequence[str] | None = None
    ) -> list[list[float]]:
        """Log-probability of each option text (e.g. " A") after the assistant's reply so far (`prefixes`, default empty)."""
        option_ids = [self.tokenizer(o, add_special_tokens=False)["input_ids"] for o in options]
        if any(not o for o in option_ids):
            raise ValueError("every option must encode to at least one token")
        prompts = [self.encode_prompt(c) for c in conversations]
        if prefixes is not None:
            prompts = [
                p + (self.tokenizer(x, add_special_tokens=False)["input_ids"] if x else [])
                for p, x in zip(prompts, prefixes, strict=True)
            ]
        items = [(c, o) for c in range(len(prompts)) for o in range(len(options))]
        seqs = [prompts[c] + option_ids[o] for c, o in items]
        scores = [0.0] * len(items)
        keep = max(len(o) for o in option_ids) + 1
        batches = self._batches([len(s) for s in seqs])
        mine = range(dist.rank(), len(batches), dist.world_size())  # several processes: each scores its share
        with torch.inference_mode():
            for idx in (batches[b] for b in mine):
                ids, mask = self._left_pad([seqs[i] for i in idx])
                pos = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: positions start at each row's first token
                # left padding puts every option at the right end: only the last `keep` logits are needed
                logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep).logits
                logp = torch.log_softmax(logits.float(), dim=-1)
                for r, i in enumerate(idx):
                    opt = option_ids[items[i][1]]
                    # token opt[k] sits at position width-len(opt)+k and is predicted by the one before it
                    start = keep - len(opt) - 1
                    scores[i] = sum(logp[r, start + k, t].item() for k, t in enumerate(opt))
        if dist.active():
            for i, score in dist.gather([(i, scores[i]) for b in mine for i in batches[b]]):
                scores[i] = score
        return [scores[c * len(options) : (c + 1) * len(options)] for c in range(len(prompts))]

    def close(self) -> None:
        """Free the model (and GPU memory)."""
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
