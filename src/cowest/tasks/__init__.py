"""Tasks: examples, answer extraction, metrics and data loaders."""

from .base import Example, TaskData, TaskType
from .registry import available, load_task, register

__all__ = ["Example", "TaskData", "TaskType", "available", "load_task", "register"]
