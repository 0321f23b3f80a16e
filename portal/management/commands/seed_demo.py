from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.demo import DEMO_PASSWORD, demo_seed
from portal.http_client import OutboundBlocked, check_url


class Command(BaseCommand):
    help = "Create the demo tenants, users and data (idempotent). Refuses to run with DEBUG off unless --force."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print one JSON object with logins and keys.")
        parser.add_argument("--mock-url", default="http://127.0.0.1:9100", help="Base URL of the mock LLM.")
        parser.add_argument("--base-url", default=settings.GATEHOUSE_PUBLIC_BASE_URL, help="Gatehouse's URL.")
        parser.add_argument("--password", default=DEMO_PASSWORD, help="Password for every demo account.")
        parser.add_argument("--force", action="store_true", help="Seed even with DEBUG off (staging boxes).")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError("seed_demo creates accounts with a published password; with DEBUG off it needs --force.")
        mock_url = options["mock_url"].rstrip("/")
        try:
            check_url(mock_url, allow_private=settings.GATEHOUSE_ALLOW_PRIVATE_UPSTREAMS)
        except OutboundBlocked:
            raise CommandError(
                f"The mock upstream {mock_url} is on a private address: set GATEHOUSE_ALLOW_PRIVATE_UPSTREAMS=true "
                "(make demo does) to let the demo's deployments use it."
            ) from None
        # Notification e-mails of the seeding (console backend) go to stderr: stdout carries only the result.
        with contextlib.redirect_stdout(sys.stderr):
            summary = demo_seed(
                base_url=options["base_url"].rstrip("/"),
                mock_url=mock_url,
                password=options["password"],
            )
        if options["json"]:
            self.stdout.write(json.dumps(summary.as_dict(), indent=2))
            return
        self.stdout.write(self.style.SUCCESS("Demo data is in place."))
        for user in summary.users:
            self.stdout.write(f"  {user.email:<22} {user.password}  ({user.role} of {user.tenant})")
