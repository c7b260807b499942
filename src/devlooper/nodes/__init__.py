"""The graph's nodes, one module each."""

from .apply import apply
from .diagnose import diagnose
from .escalate import escalate
from .finish import finish
from .generate import generate
from .plan import plan
from .test import test

__all__ = ["apply", "diagnose", "escalate", "finish", "generate", "plan", "test"]
