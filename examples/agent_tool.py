"""devlooper as a tool of a LangChain agent.

The agent decides when a request needs working code and calls the
``build_project`` tool, which runs the whole devlooper loop (write, test, fix
until green) and answers with a short summary the agent can reason about.

    python examples/agent_tool.py                        # offline: scripted agent, replayed devlooper
    python examples/agent_tool.py --agent-model openai:gpt-5.1 --model openai:gpt-5.1

Offline, the agent's own model is a two-turn script (call the tool, then
answer) standing in for a real tool-calling model, and devlooper replays
examples/cassettes/slugify.json; the sandbox and pytest are real either way.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

import devlooper
from devlooper import Context

CASSETTE = Path(__file__).parent / "cassettes" / "slugify.json"


def build_project_tool(context: Context):
    """A tool that runs devlooper with ``context`` (model, sandbox, limits, output)."""

    @tool
    async def build_project(prompt: str, template: str = "python") -> str:
        """Write a software project from a description and fix it until its tests pass.

        Args:
            prompt: what to build, e.g. "a slugify function for URL slugs".
            template: the environment template (python).
        """
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        final = await devlooper.graph.ainvoke({"prompt": prompt, "template": template}, config, context=context)
        report = final["report"]
        files = ", ".join(sorted(final["files"]))
        where = f"; written to {context.output_dir}" if context.output_dir else ""
        return f"{final['status']} after {report['iterations']} test run(s): {final['reason']}. Files: {files}{where}"

    return build_project


class ScriptedAgentModel(GenericFakeChatModel):
    """Replies from a list, in order; accepts tools the way a tool-calling model does."""

    def bind_tools(self, tools: Any, **kwargs: Any):
        return self


def scripted_agent_model() -> ScriptedAgentModel:
    call = {"name": "build_project", "args": {"prompt": "a slugify function for URL slugs"}, "id": "call_1"}
    return ScriptedAgentModel(messages=iter([
        AIMessage(content="", tool_calls=[call]),
        AIMessage(content="Done: slugify.py is written and its tests pass."),
    ]))


async def main(argv: list[str] | None = None) -> dict:
    args = _args(argv)
    context = Context(model=args.model, output_dir=args.output, max_iterations=args.max_iterations)
    agent_model = args.agent_model or scripted_agent_model()
    agent = create_agent(agent_model, tools=[build_project_tool(context)],
                         system_prompt="Use build_project when the user needs working code.")
    result = await agent.ainvoke({"messages": [("user", "I need a slugify function for my blog's URLs.")]})
    for message in result["messages"]:
        if message.type == "tool":
            print(f"tool {message.name}: {message.content}")
    print(f"agent: {result['messages'][-1].text}")
    return result


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=f"replay:{CASSETTE}", help="devlooper's model (default: replay the example cassette)")
    p.add_argument("--agent-model", default=None, help="the agent's provider:model (default: a scripted stand-in)")
    p.add_argument("--output", default=None, help="write the finished project here")
    p.add_argument("--max-iterations", type=int, default=5)
    return p.parse_args(argv)


if __name__ == "__main__":
    result = asyncio.run(main())
    tool_replies = [m.content for m in result["messages"] if m.type == "tool"]
    raise SystemExit(0 if tool_replies and tool_replies[-1].startswith("passed") else 1)
