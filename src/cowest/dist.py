"""Several processes under `accelerate launch`: which one writes, and how work is split and shared.

Every process runs the same program in the same order. Training is data-parallel (the TRL trainers do it); weak
drafting splits its batches across processes and gathers them in order (`models.hf`); a strong model, the judge and
every file write belong to the main process, which shares each answer with the others (`models.shared`). One
process is the usual case: then nothing here starts a process group, and every function is a cheap no-op.
"""

from __future__ import annotations

import os
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def world_size() -> int:
    """How many processes the launcher started (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def active() -> bool:
    """True under a launcher with more than one process."""
    return world_size() > 1


def _state() -> Any:
    import torch
    from accelerate import PartialState  # the trainers share this singleton: one process group for both

    # without `cpu` a machine with no GPU would be taken for one process (the trainers pass it on such machines too)
    return PartialState(cpu=not torch.cuda.is_available())


def finish(ok: bool = True) -> None:
    """Close the process group (at the end of a command), so that every process exits cleanly."""
    if not active():
        return
    import gc

    # Trainers kept alive by reference cycles hold the group's pending work; freed at interpreter exit instead,
    # that work aborts the process now and then ("terminate called without an active exception").
    gc.collect()
    if ok:  # after an error another process may never reach a barrier
        barrier()
    _state().destroy_process_group()


def rank() -> int:
    """This process's index, 0 on the main process."""
    return _state().process_index if active() else 0


def local_rank() -> int:
    """This process's index on its machine (its GPU)."""
    return _state().local_process_index if active() else 0


def is_main() -> bool:
    """True on the process that writes artifacts and calls strong models."""
    return rank() == 0


def barrier() -> None:
    """Wait until every process gets here."""
    if active():
        _state().wait_for_everyone()


def gather(items: list) -> list:
    """Every process's `items` concatenated in process order, on every process."""
    if not active():
        return list(items)
    from accelerate.utils import gather_object

    return gather_object(list(items))


def share(make: Callable[[], T]) -> T:
    """`make()` on the main process, its result (or its error) on every process."""
    if not active():
        return make()
    from accelerate.utils import broadcast_object_list

    box: list[Any] = [None]
    if is_main():
        try:
            box[0] = ("ok", make())
        except BaseException as e:  # the others must not wait forever for a result that will not come
            box[0] = ("error", _portable(e))
            broadcast_object_list(box)
            raise
    broadcast_object_list(box)
    status, value = box[0]
    if status == "error":
        raise value
    return value


def _portable(e: BaseException) -> BaseException:
    """`e` itself when it survives pickling, else a CowestError with its message."""
    import pickle

    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        from .errors import CowestError

        return CowestError(f"on the main process: {type(e).__name__}: {e}")
