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
    assert {"model", "sandbox", "template", "max_iterations"} <= set(context)
    assert "description" in context["model"]


def test_exported_graph_has_no_checkpointer():
    # `langgraph dev` refuses a graph compiled with its own checkpointer.
    assert graph.checkpointer is None
