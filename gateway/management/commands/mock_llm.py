from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from gateway import mock_llm


class Command(BaseCommand):
    help = "Run the mock LLM upstream (OpenAI- and Anthropic-compatible, with fault injection) in the foreground."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9100)
        parser.add_argument(
            "--workers",
            type=int,
            default=1,
            help="Processes sharing the port (benchmarks); each keeps its own journal.",
        )

    def handle(self, *args: Any, host: str, port: int, workers: int, **options: Any) -> None:
        mock_llm.run(host=host, port=port, workers=workers)
