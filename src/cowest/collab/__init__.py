"""The CoWest method: prompts, collaborative inference, collaborative feedback and evaluators."""

from .evaluators import JudgeEvaluator, RuleEvaluator, parse_judge_score
from .feedback import mine, select_pairs
from .mining_stats import MiningResult, heldout_questions, mining_stats
from .pipeline import Answered, Collaborator
from .prompter import Prompter

__all__ = [
    "Answered", "Collaborator", "JudgeEvaluator", "MiningResult", "Prompter", "RuleEvaluator",
    "heldout_questions", "mine", "mining_stats", "parse_judge_score", "select_pairs",
]
