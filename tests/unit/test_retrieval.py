"""What a prompt shows of the code: chunks ranked by BM25, within the token budget."""

import pytest

from devlooper import budgets, prompts
from devlooper.patches import PatchError, apply_patch
from devlooper.prompts.retrieval import chunks, failure_query, rank
from devlooper.schemas import Action
from devlooper.templates import get_template

PYTHON = get_template("python")


def _module(i: int) -> str:
    # Every module looks alike: invoices, totals, rates; one function differs by name.
    name = "invoice_total" if i == 137 else f"invoice_summary_{i}"
    return (
        "from decimal import Decimal\n\n\n"
        f"def {name}(items):\n    total = sum(item.price for item in items)\n    return total * rate_{i}()\n\n\n"
        f"def rate_{i}():\n    return Decimal('1.{i}')\n\n\n"
        f"class Invoice{i}:\n    def __init__(self, items):\n        self.items = items\n"
    )


def test_bm25_picks_the_function_named_in_a_traceback_out_of_200_files():
    files = {f"billing/mod_{i:03}.py": _module(i) for i in range(200)}
    run = {
        "output": (
            "Traceback (most recent call last):\n"
            '  File "/ws/tests/test_billing.py", line 12, in test_invoice_total\n'
            "    assert invoice_total(items) == 30\n"
            '  File "/ws/billing/core.py", line 5, in invoice_total\n'
            "    return total * rate()\nAssertionError: assert Decimal('33.7') == 30\n"
        ),
        "failures": [{"name": "tests/test_billing.py::test_invoice_total", "message": "AssertionError"}],
    }
    every = [c for path, text in files.items() for c in chunks(path, text)]
    best = rank(every, failure_query(run))[0]
    assert best.path == "billing/mod_137.py" and "def invoice_total(items)" in best.text
    assert best.start == 4  # line numbers name where the chunk is


def _state(files: dict[str, str], output: str) -> dict:
    return {
        "prompt": "a billing library",
        "files": files,
        "diagnosis": "compute() at the end of big.py returns the wrong sign",
        "test_runs": [{"iteration": 1, "exit_code": 1, "output": output, "dropped": 0, "passed": 0, "failed": 1,
                       "failures": [{"name": "tests/test_big.py::test_compute", "message": "assert -1 == 1"}],
                       "timed_out": False, "duration": 0.1}],
        "iteration": 1, "plans": [], "edits": [], "action_results": [],
    }


LINES_5000 = "".join(
    f'def helper_{i}(x):\n    """Add {i} to x: one of the many helpers of this module."""\n    return x + {i}\n\n'
    for i in range(1_250)
) + "def compute():\n    return -1\n"


@pytest.mark.parametrize("budget", [budgets.MAX_PROMPT_TOKENS, 4_000])
@pytest.mark.parametrize(
    "big", ["x = 1  # padding\n" * 1_250_000, LINES_5000], ids=["20 MB file", "5,000-line file"]
)
def test_prompts_stay_within_the_token_budget_whatever_one_file_holds(big, budget):
    files = {"big.py": big, "tests/test_big.py": "from big import compute\n\n\ndef test_compute():\n    assert compute() == 1\n"}
    state = _state(files, 'File "/ws/big.py", line 5002, in compute\nassert -1 == 1\n' * 2_000)
    action = Action(kind="fix_file", path="big.py", instructions="compute must return 1")
    built = {
        "diagnose": prompts.diagnose(state, PYTHON, 16_000, budget=budget),
        "plan_fix": prompts.plan_fix(state, PYTHON, "", budget=budget),
        "fix_file": prompts.fix_file(state, PYTHON, action, budget),
    }
    for name, messages in built.items():
        assert prompts.size_of(messages) <= budget, name
    assert prompts.fix_as_patch(files, "big.py", budget)
    if big is LINES_5000:  # the chunk to fix is the one shown
        assert "def compute():\n    return -1" in built["fix_file"][-1].content
        assert "def compute():\n    return -1" in built["diagnose"][-1].content


def test_a_patch_replaces_exactly_the_lines_it_names():
    reply = "<<<<<<< SEARCH\ndef compute():\n    return -1\n=======\ndef compute():\n    return 1\n>>>>>>> REPLACE\n"
    patched = apply_patch(LINES_5000, reply)
    assert patched == LINES_5000.replace("def compute():\n    return -1", "def compute():\n    return 1")


@pytest.mark.parametrize(
    "reply, why",
    [
        ("compute should return 1", "no <<<<<<< SEARCH"),
        ("<<<<<<< SEARCH\n    return -2\n=======\n    return 1\n>>>>>>> REPLACE", "does not occur"),
        ("<<<<<<< SEARCH\n\n\n=======\n\n>>>>>>> REPLACE", "empty SEARCH"),
        ("<<<<<<< SEARCH\n    return x + 1\n=======\n    return x\n>>>>>>> REPLACE", "occurs"),
    ],
    ids=["no block", "not found", "empty", "ambiguous"],
)
def test_a_patch_that_cannot_apply_says_why(reply, why):
    text = LINES_5000 + "def again(x):\n    return x + 1\n"
    with pytest.raises(PatchError, match=why):
        apply_patch(text, reply)
