"""A file too large to show whole is fixed with a search/replace patch, through the whole loop."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_scripted

BIG = "".join(
    f'def helper_{i}(x):\n    """Add {i} to x: one of the many helpers of this module."""\n    return x + {i}\n\n'
    for i in range(1_250)
) + "def compute():\n    return -1\n"
TESTS = "from big import compute, helper_3\n\n\ndef test_compute():\n    assert compute() == 1\n\n\ndef test_helper():\n    assert helper_3(1) == 4\n"
PLAN = {"notes": "one big module", "files": [{"path": "big.py", "purpose": "helpers"}, {"path": "tests/test_big.py", "purpose": "tests"}]}
FIX = {"summary": "compute returns 1", "actions": [{"kind": "fix_file", "path": "big.py", "instructions": "compute must return 1"}]}
PATCH = "<<<<<<< SEARCH\ndef compute():\n    return -1\n=======\ndef compute():\n    return 1\n>>>>>>> REPLACE\n"


async def test_a_5000_line_file_is_fixed_by_a_patch_that_lands_in_the_right_place(output_dir: Path):
    seen = []

    def fix(messages):
        seen.append(messages[-1].content)
        return PATCH if len(seen) > 1 else PATCH.replace("return -1", "return -2")  # the first one misses

    state = await run_scripted(
        {
            "plan_project": PLAN, "generate_file:big.py": BIG, "generate_file:tests/test_big.py": TESTS,
            "diagnose:*": "compute returns -1", "plan:*": FIX, "fix_file:*": fix,
        },
        output_dir=str(output_dir),
        max_prompt_tokens=8_000,
    )
    assert state["status"] == "passed" and state["iteration"] == 3
    # The first patch did not apply: refused, nothing written, and the model was told why.
    refused = [r for r in state["action_results"] if r["iteration"] == 1 and r["kind"] == "fix"]
    assert not refused[0]["ok"] and "does not occur" in refused[0]["output"]
    assert (output_dir / "big.py").read_text() == BIG.replace("return -1", "return 1")
    for prompt in seen:  # the file was never shown whole; the part to fix was
        assert "too many to show whole" in prompt and "def compute():\n    return -1" in prompt
        assert len(prompt) < 8_000 * 4
