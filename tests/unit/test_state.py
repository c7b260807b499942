from devlooper.context import Context
from devlooper.state import add_counts, merge_files


def test_merge_files_adds_replaces_and_deletes():
    current = {"a.py": "1", "b.py": "2"}
    merged = merge_files(current, {"a.py": "1'", "b.py": None, "c.py": "3"})
    assert merged == {"a.py": "1'", "c.py": "3"}
    assert current == {"a.py": "1", "b.py": "2"}  # reducers never mutate their input


def test_merge_files_tolerates_empty_sides():
    assert merge_files(None, {"a": "x"}) == {"a": "x"}
    assert merge_files({"a": "x"}, None) == {"a": "x"}
    assert merge_files({"a": "x"}, {"missing": None}) == {"a": "x"}


def test_add_counts_sums_per_key():
    assert add_counts({"input_tokens": 3, "calls": 1}, {"input_tokens": 4, "output_tokens": 2}) == {
        "input_tokens": 7,
        "calls": 1,
        "output_tokens": 2,
    }


def test_context_falls_back_to_environment(monkeypatch):
    monkeypatch.setenv("DEVLOOPER_MODEL", "openai:some-model")
    monkeypatch.setenv("DEVLOOPER_MAX_ITERATIONS", "4")
    ctx = Context()
    assert ctx.model == "openai:some-model"
    assert ctx.max_iterations == 4
    # An explicit value wins over the environment.
    assert Context(max_iterations=7).max_iterations == 7
