from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.demo import DemoSummary, demo_seed


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _wait_until_up(url: str, procs: list[subprocess.Popen[bytes]], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in procs):
            raise CommandError("A demo process exited during start-up; its output is above.")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own loopback URL
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise CommandError(f"{url} did not answer within {seconds:.0f} s.")


class Command(BaseCommand):
    help = "Run the demo: migrate, seed, start the mock LLM upstream and Gatehouse (uvicorn). Ctrl-C stops all."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--mock-port", type=int, default=9100)

    def handle(self, *args: Any, host: str, port: int, mock_port: int, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("The demo runs with DEBUG on (use `make demo`, which sets it).")
        for name, number in (("--port", port), ("--mock-port", mock_port)):
            if not _port_is_free(host, number):
                raise CommandError(f"Port {number} on {host} is in use: stop what runs there, or pass {name}.")

        # Ctrl-C and `kill` both stop everything; explicit, because a shell that starts us in the background
        # leaves SIGINT ignored, and SIGTERM would otherwise kill us without stopping the children.
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
        base_url, mock_url = f"http://{host}:{port}", f"http://{host}:{mock_port}"
        call_command("migrate", interactive=False, verbosity=0)
        summary = demo_seed(base_url=base_url, mock_url=mock_url)

        env = {
            **os.environ,
            "GATEHOUSE_PUBLIC_BASE_URL": base_url,
            "GATEHOUSE_ALLOW_PRIVATE_UPSTREAMS": "true",
        }
        manage = str(settings.BASE_DIR / "manage.py")
        commands = [
            [sys.executable, manage, "mock_llm", "--host", host, "--port", str(mock_port)],
            [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", host, "--port", str(port)],
        ]
        # Our own interpreter with fixed arguments: nothing here comes from outside.
        procs = [subprocess.Popen(command, env=env, cwd=settings.BASE_DIR) for command in commands]  # noqa: S603
        try:
            _wait_until_up(f"{mock_url}/v1/models", procs)
            _wait_until_up(f"{base_url}/healthz", procs)
            self.stdout.write(self.banner(summary))
            self.stdout.flush()
            while all(proc.poll() is None for proc in procs):
                time.sleep(0.5)
            raise CommandError("A demo process stopped unexpectedly; its output is above.")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping the demo…")
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
            for proc in procs:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def banner(self, summary: DemoSummary) -> str:
        base, mock, key = summary.base_url, summary.mock_url, summary.api_key
        logins = "\n".join(f"    {u.email:<22} {u.role} of {u.tenant}" for u in summary.users)
        operator = summary.operator
        assert operator is not None
        return f"""
================================================================================
 Gatehouse demo is running:  {base}/
 Mock LLM upstream:          {mock}/v1   (the only fake: speaks OpenAI and Anthropic)

 Sign in at {base}/accounts/login/ — password for every account: {operator.password}
{logins}
    {operator.email:<22} platform operator ({base}/admin/)

 API key of globex-web (subscribed to acme's assistant, embed and summarize; shown once):
   {key}

 Call the gateway like OpenAI (acme's models run on the mock upstream):

   curl -s {base}/v1/chat/completions -H "Authorization: Bearer {key}" \\
     -H 'content-type: application/json' \\
     -d '{{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

.venv/bin/python - <<'PY'
from openai import OpenAI
client = OpenAI(base_url="{base}/v1", api_key="{key}")
reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "Hi"}}])
print(reply.choices[0].message.content)
PY

 Ctrl-C stops everything.
================================================================================
"""
