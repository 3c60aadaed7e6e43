"""`mix`: several sources of one task type pooled, then split here so no question is on both sides."""

from __future__ import annotations

from pydantic import ValidationError

from ...config import TaskConfig
from ..base import Example, TaskData, TaskType
from ..flow import build_corpus
from ..readers import TaskDataError
from ..registry import LoaderInfo, described, load_task
from ..splits import split_examples


@described(LoaderInfo(
    summary="Several sources of one task type pooled, then split here so that no question is on both sides.",
    knobs={"task.options.sources": "a list of task blocks, e.g. [{name: medmcqa}, {name: mmlu, subjects: [anatomy]}]"},
    notes=("Each example's metadata source_task names its source.",),
))
def load_mix(cfg: TaskConfig) -> TaskData:
    """Several sources of one task type (task.options.sources: task blocks) pooled, then split here by question."""
    sources = cfg.options.get("sources")
    if not isinstance(sources, list) or not sources:
        raise TaskDataError(
            "task mix: task.options.sources must be a list of task blocks, "
            "e.g. [{name: medmcqa}, {name: mmlu, subjects: [anatomy]}]"
        )
    pooled: list[Example] = []
    kinds: dict[str, TaskType] = {}
    for i, src in enumerate(sources):
        where = f"task.options.sources[{i}]"
        if not isinstance(src, dict) or src.get("name") == "mix":
            raise TaskDataError(f"{where}: expected a task block such as {{name: medmcqa}} (not another mix)")
        try:
            # Each source whole (no split of its own): the split below keeps every question on one side.
            scfg = TaskConfig.model_validate({**src, "test_fraction": 0.0, "n_train": None, "n_test": None})
        except ValidationError as e:
            err = e.errors()[0]
            raise TaskDataError(f"{where}.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        data = load_task(scfg)
        kinds[data.type.name] = data.type
        pooled += [
            e.model_copy(update={"metadata": {**e.metadata, "source_task": scfg.name}}) for e in data.train + data.test
        ]
    if len(kinds) > 1:
        raise TaskDataError(f"task mix: sources have different task types ({', '.join(sorted(kinds))})")
    task_type = next(iter(kinds.values()))
    train, test = split_examples(pooled, cfg)
    return TaskData(name="mix", type=task_type, train=train, test=test, corpus=build_corpus(train, task_type))
