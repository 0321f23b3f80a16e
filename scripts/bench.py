"""Benchmarks, run by `make bench` (needs Debian's wrk and nginx-light: `apt-get install wrk nginx-light`).

``--target gateway`` (the default) sends the same chat request, one server process each, to
  direct     nginx serving canned OpenAI / Anthropic JSON (the instant upstream; the floor),
  gatehouse  Gatehouse under uvicorn, 1 worker: key auth, policies (rate limits per subscription and tenant,
             request/token/cost quotas reserved and settled — raised far above the load: checked on every
             call, never refusing — PII rules, the injection guard, an IP allowlist, the output filter),
             routing, usage events on (onto the Redis stream when
             REDIS_URL is set, else straight into the database), upstream = that nginx,
  litellm    LiteLLM's own proxy, 1 worker, master key, no database, installed by this script into its own
             venv (.bench/litellm-venv), upstream = that nginx,
and reports added latency p50/p99 at concurrency 1, requests/s, p99 and errors at 32 and 128 connections, CPU
time per request, peak RSS, streaming time-to-first-token, and each Gatehouse figure as a ratio to LiteLLM's
measured in the same run. The translated path (OpenAI format in, Anthropic's /v1/messages out, through litellm
inside Gatehouse) is measured too. Results go to bench/results/<UTC time>.txt (and .json).

``--target mock`` measures the mock LLM upstream alone (it must never be the bottleneck of a gateway test).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LITELLM_VENV = ROOT / ".bench" / "litellm-venv"
# litellm[proxy] of our own pin needs packages this machine's registry lacks (litellm-proxy-extras 0.4.113);
# this is the newest release whose proxy extra installs here. The proxy's overhead is what we compare against.
LITELLM_PROXY_VERSION = "1.108.5"
LITELLM_MASTER_KEY = "sk-bench-master-key"
OFFLINE = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_OFFLINE_MODE": "true", "HF_HUB_OFFLINE": "1"}

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello, world!"}]}
CLAUDE = {"model": "claude-haiku", "messages": [{"role": "user", "content": "Hello, world!"}], "max_tokens": 64}
OPENAI_ANSWER = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1764000000, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 11, "completion_tokens": 9, "total_tokens": 20}, "system_fingerprint": "fp_bench",
}  # fmt: skip
ANTHROPIC_ANSWER = {
    "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-latest",
    "content": [{"type": "text", "text": "Hello! How can I help you today?"}], "stop_reason": "end_turn",
    "stop_sequence": None, "usage": {"input_tokens": 11, "output_tokens": 9},
}  # fmt: skip


def _sse_answer() -> str:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1764000000, "model": "gpt-4o-mini"}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        *({**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]} for w in
          ("Hello", "!", " How", " can", " I", " help", "?")),
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}},
    ]  # fmt: skip
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


# --- processes -----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    url: str, *, headers: dict[str, str] | None = None, body: dict | None = None, seconds: float = 90
) -> None:
    deadline = time.monotonic() + seconds
    data = json.dumps(body).encode() if body is not None else None
    while time.monotonic() < deadline:
        request = urllib.request.Request(  # noqa: S310 - a loopback URL we started
            url, data=data, headers={"content-type": "application/json", **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback URL we started
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer 200 within {seconds} s")


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [pid], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants."""
    ticks = 0
    for p in _descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process and its descendants."""
    total = 0
    for p in _descendants(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        total += int(match[1]) if match else 0
    return total / 1024


@contextmanager
def paused(servers: list[Server]) -> Iterator[None]:
    """SIGSTOP these servers (and their children) meanwhile, so an idle one's timers never share the CPU."""
    pids = [p for server in servers for p in _descendants(server.pid)]
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in pids:
            os.kill(p, signal.SIGCONT)


def alone(arm: Server, arms: list[Server]) -> AbstractContextManager[None]:
    """While measuring a server under test, the other server under test is paused (the upstream never is)."""
    return paused([other for other in arms if other is not arm and other.name != "direct"])


@dataclass
class Server:
    name: str
    url: str  # base URL up to and excluding /v1
    headers: dict[str, str]
    process: subprocess.Popen[bytes] | None  # None: not ours to measure (the direct arm measures nginx)
    pid: int


# With two or more CPUs, each server under test (Gatehouse, LiteLLM's proxy) gets CPU 0 to itself, wrk (and
# this script) runs on the others; the nginx upstream, like Redis, may run anywhere. The load generator then
# never takes turns with the server on its core, and run-to-run noise drops.
SERVER_CPUS = {0} if (os.cpu_count() or 1) >= 2 else None
CLIENT_CPUS = set(range(1, os.cpu_count() or 1)) or None
ALL_CPUS = set(range(os.cpu_count() or 1))


def pin_this_process_to_client_cpus() -> None:
    if CLIENT_CPUS is not None:
        os.sched_setaffinity(0, CLIENT_CPUS)  # inherited by wrk, started from here


@contextmanager
def started(
    command: list[str], *, env: dict[str, str] | None = None, log: Path, cpus: set[int] | None = ALL_CPUS
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )  # fmt: skip
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {work}/body; proxy_temp_path {work}/proxy; fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location = /v1/chat/completions {{ default_type {chat_type}; return 200 '{chat}'; }}
        location = /v1/messages {{ default_type application/json; return 200 '{messages}'; }}
        location = /v1/models {{ default_type application/json; return 200 '{{"object":"list","data":[]}}'; }}
    }}
}}
"""


def write_nginx_conf(work: Path, port: int, *, stream: bool) -> Path:
    conf = work / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            work=work,
            port=port,
            chat_type="text/event-stream" if stream else "application/json",
            chat=(_sse_answer() if stream else json.dumps(OPENAI_ANSWER)).replace("'", "\\'"),
            messages=json.dumps(ANTHROPIC_ANSWER).replace("'", "\\'"),
        )
    )
    return conf


def ensure_litellm_venv() -> Path:
    """LiteLLM's proxy in a venv of its own (its dependencies are not Gatehouse's)."""
    binary = LITELLM_VENV / "bin" / "litellm"
    marker = LITELLM_VENV / f".installed-{LITELLM_PROXY_VERSION}"
    if not marker.exists():
        print(f"installing litellm[proxy]=={LITELLM_PROXY_VERSION} into {LITELLM_VENV} (once)…", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(LITELLM_VENV)], check=True)  # noqa: S603
        subprocess.run(  # noqa: S603
            [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_PROXY_VERSION}"],
            check=True,
        )
        marker.touch()
    return binary


# --- measuring -----------------------------------------------------------------------------------------------


def wrk(
    url: str, body: dict[str, Any], headers: dict[str, str], *, connections: int, duration: int
) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(body))}\n')
        for name, value in {"Content-Type": "application/json", **headers}.items():
            script.write(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}\n")
    threads = 1 if connections == 1 else 2
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script.name, url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    Path(script.name).unlink()

    def latency_ms(label: str) -> float:
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if not match:
            return float("nan")
        value, unit = float(match[1]), match[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    requests = re.search(r"(\d+) requests in", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "requests": float(requests[1]) if requests else 0.0,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1]),  # type: ignore[index]
        "p50_ms": latency_ms("50%"),
        "p99_ms": latency_ms("99%"),
        "errors": float(non_2xx[1] if non_2xx else 0)
        + sum(map(float, socket_errors.groups() if socket_errors else ())),
    }


def first_byte_ms(url: str, body: dict[str, Any], headers: dict[str, str], count: int) -> dict[str, float]:
    """Sequential streamed requests on one keep-alive connection: time to the first body byte, and to the end."""
    import http.client

    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    path = "/" + url.split("//", 1)[1].split("/", 1)[1]
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    payload = json.dumps({**body, "stream": True})
    first, total = [], []
    for n in range(count + 20):
        started = time.perf_counter()
        connection.request("POST", path, payload, {"content-type": "application/json", **headers})
        response = connection.getresponse()
        if response.status != 200:
            raise SystemExit(f"streaming request to {url} answered {response.status}: {response.read()[:300]!r}")
        response.read1(1)  # the first byte of the body: the first event
        got_first = time.perf_counter()
        response.read()
        if n >= 20:  # warm-up excluded
            first.append((got_first - started) * 1000)
            total.append((time.perf_counter() - started) * 1000)
    connection.close()
    return {
        "ttft_p50_ms": statistics.median(first),
        "ttft_p99_ms": _p99(first),
        "total_p50_ms": statistics.median(total),
    }


def _p99(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.99) - 1)]


def measure(server: Server, path: str, body: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    url = f"{server.url}{path}"
    wrk(url, body, server.headers, connections=8, duration=2)  # warm-up: caches, pools, JITs of all kinds
    result: dict[str, Any] = {"c1": wrk(url, body, server.headers, connections=1, duration=args.duration)}
    for connections in (32, 128):
        before = cpu_seconds(server.pid)
        measured = wrk(url, body, server.headers, connections=connections, duration=args.duration)
        spent = cpu_seconds(server.pid) - before
        measured["cpu_ms_per_request"] = spent * 1000 / measured["requests"] if measured["requests"] else float("nan")
        result[f"c{connections}"] = measured
    result["peak_rss_mb"] = peak_rss_mb(server.pid)
    return result


# --- the gateway benchmark -----------------------------------------------------------------------------------


def gatehouse_env(work: Path) -> dict[str, str]:
    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(
        OFFLINE,
        DEBUG="false",
        SECRET_KEY="bench-" + "s" * 50,
        GATEHOUSE_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        GATEHOUSE_ALLOW_PRIVATE_UPSTREAMS="true",
        GATEHOUSE_VAR_DIR=str(work),
        GATEHOUSE_USAGE_STREAM=f"bench:usage:{os.getpid()}",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        LOG_LEVEL="WARNING",
    )
    return env


def bench_gateway(args: argparse.Namespace) -> dict[str, Any]:
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"`make bench` needs {tool}: apt-get install wrk nginx-light")
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    litellm_bin = ensure_litellm_venv()
    pin_this_process_to_client_cpus()
    work = Path(tempfile.mkdtemp(prefix="gatehouse-bench-"))
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (work / sub).mkdir()
    upstream_port, gatehouse_port, litellm_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    conf = write_nginx_conf(work, upstream_port, stream=False)
    env = gatehouse_env(work)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)  # noqa: S603
    seeded = subprocess.run(  # noqa: S603
        [*manage, "seed_demo", "--force", "--json", "--mock-url", upstream],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    key = json.loads(seeded.stdout)["api_key"]
    # Policies stay on — every measured call takes its rate limits and reserves (then settles) its quotas in the
    # limiter's one round trip, is scrubbed for PII, inspected for prompt injection, checked against an IP
    # allowlist, and its answer filtered — but far above any load: per-minute limits per subscription and per
    # consumer tenant, token and cost quotas on the plan, a request quota on the consumer tenant.
    unlimited = (
        "from gateway.models import Plan; from gateway.services import policy_set; from tenants.models import Tenant;"
        "from tenants.services import SYSTEM;"
        "Plan.objects.update(requests_per_minute=10**9, tokens_per_minute=10**12, token_quota=10**15,"
        " cost_quota_micros=10**15, quota_period='month');"
        "policy_set(level='consumer', target=Tenant.objects.get(slug='globex'), actor=SYSTEM,"
        " rules={'rate_limits': {'requests_per_minute': 10**9}, 'quota': {'requests': 10**12},"
        " 'pii': {'entities': {'email': 'pseudonymize', 'card': 'block', 'secret': 'mask'}},"
        " 'injection': {'action': 'flag'}, 'output': {'secrets': True, 'action': 'mask'},"
        " 'access': {'ip_allow': ['127.0.0.0/8']}})"
    )
    subprocess.run([*manage, "shell", "-c", unlimited], cwd=ROOT, env=env, check=True)  # noqa: S603
    litellm_config = work / "litellm.yaml"
    litellm_config.write_text(
        "model_list:\n"
        "  - model_name: gpt-4o-mini\n"
        "    litellm_params:\n"
        f"      model: openai/gpt-4o-mini\n      api_base: {upstream}/v1\n      api_key: sk-upstream\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_MASTER_KEY}\n"
        "litellm_settings:\n  drop_params: true\n"
    )
    litellm_env = {**{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}, **OFFLINE}
    litellm_env["LITELLM_LOG"] = "ERROR"
    uvicorn = [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1",
               "--port", str(gatehouse_port), "--no-access-log",
               "--log-level", "warning"]  # fmt: skip
    with (
        started([nginx_bin, "-c", str(conf), "-p", str(work)], log=work / "nginx.log") as nginx,
        started(uvicorn, env=env, log=work / "gatehouse.log", cpus=SERVER_CPUS) as gatehouse,
        started(
            [str(litellm_bin), "--config", str(litellm_config), "--host", "127.0.0.1", "--port", str(litellm_port),
             "--num_workers", "1"],
            env=litellm_env, log=work / "litellm.log", cpus=SERVER_CPUS,
        ) as litellm,
    ):  # fmt: skip
        arms = [
            Server("direct", upstream, {}, nginx, nginx.pid),
            Server("gatehouse", f"http://127.0.0.1:{gatehouse_port}", {"authorization": f"Bearer {key}"}, gatehouse,
                   gatehouse.pid),
            Server("litellm", f"http://127.0.0.1:{litellm_port}", {"authorization": f"Bearer {LITELLM_MASTER_KEY}"},
                   litellm, litellm.pid),
        ]  # fmt: skip
        for arm in arms:
            wait_until(f"{arm.url}/v1/chat/completions", headers=arm.headers, body=CHAT)
        results: dict[str, Any] = {"arms": {}}
        for arm in arms:
            print(f"measuring {arm.name}…", flush=True)
            with alone(arm, arms):
                results["arms"][arm.name] = measure(arm, "/v1/chat/completions", CHAT, args)
        print("measuring gatehouse → anthropic (translated by litellm)…", flush=True)
        direct_messages = wrk(f"{upstream}/v1/messages", CLAUDE, {}, connections=1, duration=args.duration)
        with alone(arms[1], arms):
            results["translated"] = measure(arms[1], "/v1/chat/completions", CLAUDE, args)
        results["translated"]["direct_c1"] = direct_messages

        # Streaming: nginx now answers chat with a canned SSE stream (reloaded in place; pools reconnect).
        write_nginx_conf(work, upstream_port, stream=True)
        subprocess.run([nginx_bin, "-c", str(conf), "-p", str(work), "-s", "reload"], check=True)  # noqa: S603
        time.sleep(1)
        print("measuring streaming time to first token…", flush=True)
        results["streaming"] = {}
        for arm in arms:
            with alone(arm, arms):
                results["streaming"][arm.name] = first_byte_ms(
                    f"{arm.url}/v1/chat/completions", CHAT, arm.headers, args.stream_requests
                )
    results["meta"] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": args.duration,
        "usage_events": "redis stream" if env.get("REDIS_URL") else "database (embedded)",
        "rate_limits": "all policies on (limits, quotas and budgets in Redis, PII, injection guard, access, output)"
        if env.get("REDIS_URL")
        else "all policies on, in process",
        "litellm_proxy_version": LITELLM_PROXY_VERSION,
        "cpus": os.cpu_count(),
        "pinning": f"servers under test on CPU {sorted(SERVER_CPUS)}, wrk on {sorted(CLIENT_CPUS)}, upstream anywhere"
        if SERVER_CPUS and CLIENT_CPUS
        else "none (one CPU)",
    }
    shutil.rmtree(work, ignore_errors=True)
    return results


def report(results: dict[str, Any]) -> str:
    arms, direct = results["arms"], results["arms"]["direct"]
    gh, ll = arms["gatehouse"], arms["litellm"]

    def added(arm: dict[str, Any], q: str) -> float:
        return arm["c1"][q] - direct["c1"][q]

    lines = [
        f"Gatehouse gateway benchmark — {results['meta']['when']} — {results['meta']['cpus']} CPUs, one worker each,",
        f"wrk {results['meta']['duration_s']} s per point, upstream: nginx with canned answers; usage events: "
        f"{results['meta']['usage_events']}; rate limits: {results['meta'].get('rate_limits', 'off')};",
        f"LiteLLM proxy {results['meta']['litellm_proxy_version']}.",
        f"CPU pinning: {results['meta'].get('pinning', 'none')}.",
        "",
        f"{'':34}{'direct':>10}{'gatehouse':>12}{'litellm':>10}{'GH/LiteLLM':>12}",
    ]

    def row(label: str, d: float | None, g: float, litellm_value: float, fmt: str = "{:.2f}") -> None:
        ratio = g / litellm_value if litellm_value else float("nan")
        lines.append(
            f"{label:34}{(fmt.format(d) if d is not None else '—'):>10}{fmt.format(g):>12}"
            f"{fmt.format(litellm_value):>10}{ratio:>11.2f}x"
        )

    row("c=1 latency p50 (ms)", direct["c1"]["p50_ms"], gh["c1"]["p50_ms"], ll["c1"]["p50_ms"])
    row("c=1 latency p99 (ms)", direct["c1"]["p99_ms"], gh["c1"]["p99_ms"], ll["c1"]["p99_ms"])
    row("c=1 ADDED latency p50 (ms)", None, added(gh, "p50_ms"), added(ll, "p50_ms"))
    row("c=1 ADDED latency p99 (ms)", None, added(gh, "p99_ms"), added(ll, "p99_ms"))
    for c in ("c32", "c128"):
        row(f"{c[1:]} conns requests/s", direct[c]["rps"], gh[c]["rps"], ll[c]["rps"], "{:.0f}")
        row(f"{c[1:]} conns p99 (ms)", direct[c]["p99_ms"], gh[c]["p99_ms"], ll[c]["p99_ms"])
        row(f"{c[1:]} conns errors", direct[c]["errors"], gh[c]["errors"], ll[c]["errors"], "{:.0f}")
        row(f"{c[1:]} conns CPU ms/request", direct[c]["cpu_ms_per_request"], gh[c]["cpu_ms_per_request"],
            ll[c]["cpu_ms_per_request"], "{:.3f}")  # fmt: skip
    row("peak RSS (MB)", direct["peak_rss_mb"], gh["peak_rss_mb"], ll["peak_rss_mb"], "{:.0f}")
    s = results["streaming"]
    row("stream TTFT p50 (ms)", s["direct"]["ttft_p50_ms"], s["gatehouse"]["ttft_p50_ms"], s["litellm"]["ttft_p50_ms"])
    row("stream ADDED TTFT p50 (ms)", None, s["gatehouse"]["ttft_p50_ms"] - s["direct"]["ttft_p50_ms"],
        s["litellm"]["ttft_p50_ms"] - s["direct"]["ttft_p50_ms"])  # fmt: skip
    t = results["translated"]
    lines += [
        "",
        "Translated path (Gatehouse → litellm → Anthropic /v1/messages on nginx), no target:",
        f"  c=1 p50 {t['c1']['p50_ms']:.2f} ms (added {t['c1']['p50_ms'] - t['direct_c1']['p50_ms']:.2f} ms), "
        f"p99 {t['c1']['p99_ms']:.2f} ms; 32 conns {t['c32']['rps']:.0f} req/s, p99 {t['c32']['p99_ms']:.1f} ms, "
        f"{t['c32']['cpu_ms_per_request']:.2f} ms CPU/request; 128 conns {t['c128']['rps']:.0f} req/s, "
        f"errors {t['c128']['errors']:.0f}",
        "",
        "Targets (issue #5): added p50 at c=1 ≤ 0.25x LiteLLM's; req/s at 32 conns ≥ 5x LiteLLM's; 0 errors at 128.",
    ]
    latency_ratio = added(gh, "p50_ms") / added(ll, "p50_ms")
    rps_ratio = gh["c32"]["rps"] / ll["c32"]["rps"]
    lines += [
        f"  added p50 ratio {latency_ratio:.3f}x → {'MET' if latency_ratio <= 0.25 else 'MISSED'}",
        f"  req/s ratio at 32 {rps_ratio:.2f}x → {'MET' if rps_ratio >= 5 else 'MISSED'}",
        f"  errors at 128: {gh['c128']['errors']:.0f} → {'MET' if gh['c128']['errors'] == 0 else 'MISSED'}",
    ]
    return "\n".join(lines)


# --- the mock benchmark --------------------------------------------------------------------------------------

MOCK_SCENARIOS: dict[str, tuple[str, dict[str, Any]]] = {
    "mock-chat": ("/v1/chat/completions", CHAT),
    "mock-embeddings": (
        "/v1/embeddings",
        {"model": "text-embedding-3-small", "input": "Hello, world!", "encoding_format": "float"},
    ),
}


def bench_mock(args: argparse.Namespace) -> str:
    port = free_port()
    code = f"from gateway.mock_llm import run; run(port={port}, workers={args.mock_workers})"
    lines = [f"{'scenario':<18}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"]
    with started([sys.executable, "-c", code], log=Path(tempfile.gettempdir()) / "gatehouse-bench-mock.log"):
        wait_until(f"http://127.0.0.1:{port}/v1/chat/completions", body=CHAT)
        for name, (path, body) in MOCK_SCENARIOS.items():
            url = f"http://127.0.0.1:{port}{path}"
            wrk(url, body, {}, connections=args.connections, duration=2)
            r = wrk(url, body, {}, connections=args.connections, duration=args.duration)
            lines.append(
                f"{name:<18}{args.connections:>6}{r['rps']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['errors']:>8.0f}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=["gateway", "mock"], default="gateway")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured point")
    parser.add_argument("--stream-requests", type=int, default=300, help="streamed requests per arm (TTFT)")
    parser.add_argument("--connections", type=int, default=32, help="mock target only")
    parser.add_argument("--mock-workers", type=int, default=1, help="mock target only: upstream processes")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("`make bench` needs wrk: apt-get install wrk nginx-light")
    if args.target == "mock":
        print(bench_mock(args))
        return
    results = bench_gateway(args)
    text = report(results)
    print("\n" + text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"{stamp}.txt").write_text(text + "\n")
    (RESULTS / f"{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {RESULTS / stamp}.txt and .json")


if __name__ == "__main__":
    main()
