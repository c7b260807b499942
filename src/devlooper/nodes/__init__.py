"""The graph's nodes, one module each."""

from .apply import apply
from .diagnose import diagnose
from .escalate import escalate
from .finish import finish
from .generate import design, generate
from .load import load
from .plan import plan
from .review import review_commands, review_plan
from .test import test

__all__ = [
    "apply", "design", "diagnose", "escalate", "finish", "generate", "load", "plan",
    "review_commands", "review_plan", "test",
]
