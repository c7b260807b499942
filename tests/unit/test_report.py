"""The run report: the timeline of iterations, the page, the project README."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from devlooper.report import has_readme, iterations, project_readme, render_html, state_events
from devlooper.report.timeline import dedupe
from devlooper.templates import get_template

DIFF = "--- a/adder.py\n+++ b/adder.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n"
STEPS = [
    {"node": "generate", "iteration": 0, "seconds": 1.0, "usage": {"input_tokens": 10, "output_tokens": 5, "calls": 3},
     "notes": "one module", "files": [{"path": "adder.py", "lines": 2}], "packages": [], "actions": []},
    {"node": "test", "iteration": 1, "seconds": 0.5, "exit_code": 1, "timed_out": False, "passed": 1, "failed": 1,
     "duration": 0.4, "failing": [{"name": "tests/test_adder.py::test_add", "message": "assert -1 == 5"}], "tail": "..."},
    {"node": "diagnose", "iteration": 1, "seconds": 0.2, "diagnosis": "add <subtracts>", "usage": {"calls": 1}},
    {"node": "plan", "iteration": 1, "seconds": 0.1, "summary": "use +", "refused": [],
     "actions": [{"kind": "fix_file", "target": "adder.py", "instructions": "use +"}]},
    {"node": "apply", "iteration": 1, "seconds": 0.1, "lines": {"adder.py": 2},
     "edits": [{"path": "adder.py", "change": "edited", "added": 1, "removed": 1, "diff": DIFF}],
     "actions": [{"kind": "command", "target": "make gen", "ok": False, "exit_code": 2, "duration": 0.1, "output": "no rule"}]},
    {"node": "test", "iteration": 2, "seconds": 0.5, "exit_code": 0, "timed_out": False, "passed": 2, "failed": 0,
     "duration": 0.4, "failing": []},
    {"node": "finish", "iteration": 2, "seconds": 0.1, "status": "passed", "reason": "tests pass"},
]


def report(**more) -> dict:
    return {
        "status": "passed", "reason": "tests pass after 2 iteration(s)", "iterations": 2, "thread_id": "t1",
        "prompt": "an adder <script>alert(1)</script>", "template": "python", "model": "replay", "sandbox": "local",
        "isolation": "bwrap", "usage": {"input_tokens": 10, "output_tokens": 5, "calls": 4}, "timings": {"test": 1.0},
        "files": ["adder.py"], "loop": {"events": [{"iteration": 2, "rung": "warned", "guidance": None,
                                                     "detections": [{"kind": "repeat", "iterations": [1, 2], "detail": "same patch"}]}]},
        "timeline": iterations(STEPS), **more,
    }


def test_iterations_group_each_test_run_with_what_followed_it():
    timeline = iterations(STEPS)
    assert [it["iteration"] for it in timeline] == [0, 1, 2]
    first = timeline[1]
    assert first["test"]["failing"][0]["name"] == "tests/test_adder.py::test_add"
    assert first["diagnosis"] == "add <subtracts>" and first["plan"]["summary"] == "use +"
    assert first["edits"][0]["diff"] == DIFF and first["actions"][0]["output"] == "no rule"
    assert first["seconds"] == {"test": 0.5, "diagnose": 0.2, "plan": 0.1, "apply": 0.1}
    assert timeline[0]["usage"]["calls"] == 3 and timeline[2]["test"]["exit_code"] == 0


def test_a_checkpoint_that_repeats_the_last_event_is_one_step():
    assert dedupe([None, STEPS[0], STEPS[0], STEPS[1], None, STEPS[1]]) == STEPS[:2]


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [v for k, v in attrs if k in ("src", "href", "srcset", "action", "poster", "data") and v]


def test_the_page_shows_every_iteration_the_chart_and_the_diff_and_loads_nothing():
    page = render_html(report())
    parser = Links()
    parser.feed(page)
    assert parser.links == [] and "script" not in parser.tags  # nothing to fetch, nothing to run
    assert not re.search(r"url\(|@import", page)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page  # text, escaped
    for n in (1, 2):
        assert f'id="iteration-{n}"' in page
    assert page.count('class="bar"') == 2 and "<svg" in page
    assert "return a + b" in page and "tests/test_adder.py::test_add" in page
    assert "add &lt;subtracts&gt;" in page and "same patch" in page and "tests pass after 2 iteration(s)" in page


def test_state_events_tell_a_run_without_checkpoints():
    state = {
        "project": {"notes": "n", "files": [{"path": "adder.py"}], "packages": []}, "files": {"adder.py": "x\n"},
        "test_runs": [
            {"iteration": 1, "exit_code": 1, "timed_out": False, "output": "E", "dropped": 0, "duration": 0.1,
             "passed": 0, "failed": 1, "failures": [{"name": "t::a", "message": "m"}]},
            {"iteration": 2, "exit_code": 0, "timed_out": False, "output": "", "dropped": 0, "duration": 0.1,
             "passed": 1, "failed": 0, "failures": []},
        ],
        "plans": [{"iteration": 1, "summary": "fix", "actions": []}],
        "edits": [{"iteration": 1, "path": "adder.py", "before": "a", "after": "b", "diff": DIFF, "reason": ""}],
        "action_results": [], "diagnosis": "why",
    }
    timeline = iterations(state_events(state))
    assert timeline[1]["test"]["failing"][0]["name"] == "t::a" and timeline[1]["edits"][0]["diff"] == DIFF
    assert timeline[0]["generation"]["files"] == [{"path": "adder.py", "lines": 1}]


def test_the_readme_says_what_it_is_how_to_install_and_test_and_where_it_came_from():
    text = project_readme("a slugify function\nfor URLs", get_template("python"), "one module", "passed", "ok")
    assert text.startswith("# A slugify function\n")
    assert "pip install -r requirements.txt" in text and "python -m pytest" in text
    assert "Generated by devlooper" in text and "> for URLs" in text and "did not all pass" not in text
    red = project_readme("x", get_template("rust"), "", "gave_up", "tests still fail")
    assert "cargo test" in red and "did not all pass (tests still fail)" in red
    assert has_readme({"README.rst": ""}) and not has_readme({"docs/x.md": ""})
