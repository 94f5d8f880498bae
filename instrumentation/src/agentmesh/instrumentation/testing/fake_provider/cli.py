"""``agentmesh-fake-provider``: serve the fake LLM provider until Ctrl-C or SIGTERM.

Example:
    ``agentmesh-fake-provider --port 8765 --scripts scripts.json`` then point clients at
    ``OPENAI_BASE_URL=http://127.0.0.1:8765/v1`` and ``ANTHROPIC_BASE_URL=http://127.0.0.1:8765``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from agentmesh.core.errors import ProviderError
from agentmesh.core.log import configure_logging
from agentmesh.instrumentation.testing.fake_provider.script import ModelScript, load_scripts
from agentmesh.instrumentation.testing.fake_provider.server import FakeProvider

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line parser.

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(
        prog="agentmesh-fake-provider",
        description=(
            "Serve a fake LLM provider (OpenAI chat completions, Anthropic messages, "
            "OpenRouter model names) on a local port, for offline tests."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port to bind; 0 picks a free one (8765)"
    )
    parser.add_argument(
        "--scripts",
        metavar="PATH",
        default=None,
        help='JSON file mapping model name to script ("*" = default script)',
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error", "critical"],
        default=None,
        help="lowest log level written to standard error (AGENTMESH_LOG_LEVEL, info)",
    )
    return parser


async def _serve(host: str, port: int, scripts: dict[str, ModelScript]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with FakeProvider(scripts, host=host, port=port) as provider:
        print(f"AgentMesh fake provider listening on {provider.url}", flush=True)  # noqa: T201
        print(f"OPENAI_BASE_URL={provider.openai_base_url}", flush=True)  # noqa: T201
        print(f"ANTHROPIC_BASE_URL={provider.anthropic_base_url}", flush=True)  # noqa: T201
        await stop.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the fake provider until interrupted.

    Args:
        argv: Command-line arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 after a clean stop, 1 when the address cannot be bound, 2 for
        invalid scripts.
    """
    args = build_parser().parse_args(argv)
    host: str = args.host
    port: int = args.port
    scripts: dict[str, ModelScript] = {}
    if args.scripts is not None:
        try:
            scripts = load_scripts(args.scripts)
        except ProviderError as exc:
            print(f"agentmesh-fake-provider: {exc}", file=sys.stderr)  # noqa: T201
            return 2
    configure_logging(level=args.log_level)
    try:
        return asyncio.run(_serve(host, port, scripts))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"agentmesh-fake-provider: cannot listen on {host}:{port}: {exc}", file=sys.stderr)  # noqa: T201
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
