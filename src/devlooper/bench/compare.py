"""Two bench results side by side: which tasks one accepts and the other does not.

Rates are compared on the tasks both results hold, so a bench that stopped early
(or ran a subset) is not counted as failing the tasks it never ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .results import BenchResults


@dataclass
class TaskDiff:
    name: str
    a: str | None  # verdict in A (None: A did not run the task)
    b: str | None
    iterations: tuple[int | None, int | None]
    tokens: tuple[int | None, int | None]

    @property
    def change(self) -> str:
        if self.a is None or self.b is None:
            return "only in " + ("B" if self.a is None else "A")
        if (self.a == "accepted") != (self.b == "accepted"):
            return "fixed" if self.b == "accepted" else "broken"
        return "same" if self.a == self.b else "changed"


@dataclass
class Comparison:
    a_label: str
    b_label: str
    tasks: list[TaskDiff] = field(default_factory=list)

    def _both(self) -> list[TaskDiff]:
        return [d for d in self.tasks if d.a is not None and d.b is not None]

    @property
    def common(self) -> int:
        return len(self._both())

    @property
    def a_accepted(self) -> int:
        return sum(d.a == "accepted" for d in self._both())

    @property
    def b_accepted(self) -> int:
        return sum(d.b == "accepted" for d in self._both())

    @property
    def a_rate(self) -> float:
        return self.a_accepted / self.common if self.common else 0.0

    @property
    def b_rate(self) -> float:
        return self.b_accepted / self.common if self.common else 0.0

    @property
    def fixed(self) -> int:
        return sum(d.change == "fixed" for d in self.tasks)

    @property
    def broken(self) -> int:
        return sum(d.change == "broken" for d in self.tasks)

    @property
    def only_a(self) -> list[str]:
        return [d.name for d in self.tasks if d.b is None]

    @property
    def only_b(self) -> list[str]:
        return [d.name for d in self.tasks if d.a is None]

    def as_dict(self) -> dict:
        return {
            "a": self.a_label, "b": self.b_label, "common": self.common, "a_accepted": self.a_accepted,
            "b_accepted": self.b_accepted, "fixed": self.fixed, "broken": self.broken,
            "tasks": [{"name": d.name, "a": d.a, "b": d.b, "change": d.change, "iterations": list(d.iterations),
                       "tokens": list(d.tokens)} for d in self.tasks],
        }


def label(results: BenchResults) -> str:
    return f"{results.model} {results.mode}"


def compare(a: BenchResults, b: BenchResults) -> Comparison:
    by_a = {t.name: t for t in a.tasks}
    by_b = {t.name: t for t in b.tasks}
    names = [*by_a, *(n for n in by_b if n not in by_a)]
    out = Comparison(label(a), label(b))
    for name in names:
        ta, tb = by_a.get(name), by_b.get(name)
        out.tasks.append(TaskDiff(
            name=name, a=ta.verdict if ta else None, b=tb.verdict if tb else None,
            iterations=(ta.iterations if ta else None, tb.iterations if tb else None),
            tokens=(ta.input_tokens + ta.output_tokens if ta else None,
                    tb.input_tokens + tb.output_tokens if tb else None),
        ))
    return out
