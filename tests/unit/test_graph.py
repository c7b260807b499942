from pathlib import Path

from devlooper import graph

SNAPSHOT = Path(__file__).parent / "graph.mmd"


def test_graph_shape_matches_the_snapshot():
    # The loop's topology is part of the product: change the snapshot on purpose.
    assert graph.get_graph().draw_mermaid() == SNAPSHOT.read_text()


def test_graph_schemas_show_only_what_users_give_and_get():
    assert set(graph.get_input_jsonschema()["properties"]) == {"prompt", "template", "project_files"}
    assert {"status", "reason", "files", "report"} <= set(graph.get_output_jsonschema()["properties"])
    context = graph.get_context_jsonschema()["properties"]
    assert {"model", "sandbox", "max_iterations"} <= set(context)
    assert "description" in context["model"]


def test_studio_forms_describe_every_field_and_show_the_template_once():
    inputs = graph.get_input_jsonschema()["properties"]
    assert all(field.get("description") for field in inputs.values()), inputs
    context = graph.get_context_jsonschema()["properties"]
    assert all(field.get("description") for field in context.values()), context
    # The template is given in the input; a chat model object cannot come from a form.
    assert "template" not in context and "chat_model" not in context
    # The step event is in the output schema: a server streams updates filtered to it.
    assert "event" in graph.get_output_jsonschema()["properties"]


def test_hidden_context_fields_stay_usable_from_python():
    from devlooper import Context

    model = object()
    ctx = Context(template="rust", chat_model=model)
    assert ctx.template == "rust" and ctx.chat_model is model


def test_exported_graph_has_no_checkpointer():
    # `langgraph dev` refuses a graph compiled with its own checkpointer.
    assert graph.checkpointer is None
