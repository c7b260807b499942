"""Context: an explicit value always wins; DEVLOOPER_* fills only what was not given."""

import dataclasses

from devlooper.context import Context
from devlooper.nodes.common import context_of


class _Runtime:
    def __init__(self, context):
        self.context = context


def test_an_explicit_value_equal_to_its_default_beats_the_environment(monkeypatch):
    monkeypatch.setenv("DEVLOOPER_SANDBOX", "e2b")
    monkeypatch.setenv("DEVLOOPER_TEMPLATE", "rust")
    monkeypatch.setenv("DEVLOOPER_MAX_ITERATIONS", "3")
    ctx = Context(sandbox="local", template="python", max_iterations=10)
    assert (ctx.sandbox, ctx.template, ctx.max_iterations) == ("local", "python", 10)


def test_the_environment_fills_what_was_not_given(monkeypatch):
    monkeypatch.setenv("DEVLOOPER_SANDBOX", "e2b")
    monkeypatch.setenv("DEVLOOPER_INTERACTIVE", "yes")
    monkeypatch.setenv("DEVLOOPER_ISOLATION", "none")
    ctx = Context(max_iterations=4)
    assert (ctx.sandbox, ctx.interactive, ctx.isolation, ctx.max_iterations) == ("e2b", True, "none", 4)


def test_a_server_context_dict_follows_the_same_rule(monkeypatch):
    monkeypatch.setenv("DEVLOOPER_SANDBOX", "e2b")
    assert context_of(_Runtime({"sandbox": "local"})).sandbox == "local"
    assert context_of(_Runtime({})).sandbox == "e2b"


def test_replace_keeps_every_value_it_copies(monkeypatch):
    ctx = Context(sandbox="local")
    monkeypatch.setenv("DEVLOOPER_SANDBOX", "modal")
    assert dataclasses.replace(ctx, max_iterations=2).sandbox == "local"
