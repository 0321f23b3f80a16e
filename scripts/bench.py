"""Benchmarks, run by `make bench` (needs Debian's `wrk`): requests/s and latency at a fixed concurrency.

Targets:
  mock   the mock LLM upstream alone — it must never be the bottleneck of a gateway benchmark.

Each scenario starts its own servers on free loopback ports, warms up, measures with wrk, and prints a table
plus one JSON line per scenario (for comparing runs).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

SCENARIOS: dict[str, tuple[str, dict[str, Any]]] = {
    "mock-chat": (
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello, world!"}]},
    ),
    "mock-embeddings": (
        "/v1/embeddings",
        {"model": "text-embedding-3-small", "input": "Hello, world!", "encoding_format": "float"},
    ),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback URL we started
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up within {seconds} s")


def wrk(url: str, body: dict[str, Any], *, connections: int, duration: int, threads: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(json.dumps(body))}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script.name, url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    Path(script.name).unlink()

    def latency_ms(label: str) -> float:
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if not match:
            return float("nan")
        value, unit = float(match[1]), match[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: .*", output)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1]),  # type: ignore[index]
        "p50_ms": latency_ms("50%"),
        "p90_ms": latency_ms("90%"),
        "p99_ms": latency_ms("99%"),
        "errors": float(errors[1]) if errors else 0.0,
        "socket_errors": 1.0 if socket_errors else 0.0,
    }


def bench_mock(args: argparse.Namespace) -> list[dict[str, object]]:
    port = free_port()
    code = f"from gateway.mock_llm import run; run(port={port}, workers={args.mock_workers})"
    mock = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL)  # noqa: S603
    results = []
    try:
        wait_until_up(f"http://127.0.0.1:{port}/v1/models")
        for name, (path, body) in SCENARIOS.items():
            url = f"http://127.0.0.1:{port}{path}"
            wrk(url, body, connections=args.connections, duration=2, threads=args.threads)  # warm-up
            measured = wrk(url, body, connections=args.connections, duration=args.duration, threads=args.threads)
            results.append(
                {"scenario": name, "connections": args.connections, "mock_workers": args.mock_workers, **measured}
            )
    finally:
        mock.terminate()
        mock.wait(timeout=10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=["mock"], default="mock")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--mock-workers", type=int, default=1, help="mock upstream processes")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("`make bench` needs wrk: apt-get install wrk")

    results = bench_mock(args)
    print(f"\n{'scenario':<18}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for r in results:
        print(
            f"{r['scenario']:<18}{r['connections']:>6}{r['requests_per_s']:>10.0f}"
            f"{r['p50_ms']:>9.2f}{r['p90_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['errors']:>8.0f}"
        )
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
