"""Two Gatehouse processes sharing one database and Redis, as in production: a key revoked anywhere stops working
on every worker within a second, and a worker that is shut down ships every usage event it still held."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.servers import ROOT, OutputReader, embedded_env, free_port, stop, wait_for

REDIS_URL = os.environ.get("REDIS_URL", "")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not REDIS_URL, reason="workers talk through Redis pub/sub (CI runs with Redis)"),
]
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, mock_llm_server) -> Iterator[dict]:
    """Two uvicorn processes on one SQLite file and the real Redis; the seeded demo key."""
    stream = f"test:usage:{uuid.uuid4().hex}"
    env = embedded_env(
        DEBUG="true",
        GATEHOUSE_ALLOW_PRIVATE_UPSTREAMS="true",
        GATEHOUSE_VAR_DIR=str(tmp_path_factory.mktemp("var")),
        REDIS_URL=REDIS_URL,
        GATEHOUSE_USAGE_STREAM=stream,
        CACHE_KEY_PREFIX=f"test-{uuid.uuid4().hex[:8]}",
    )
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    seeded = subprocess.run(
        [*manage, "seed_demo", "--json", "--mock-url", mock_llm_server.url],
        cwd=ROOT, env=env, check=True, timeout=120, capture_output=True, text=True,
    )  # fmt: skip
    servers, readers = [], []
    for _ in range(2):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--port", str(port), "--no-access-log"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        servers.append((proc, f"http://127.0.0.1:{port}"))
        readers.append(OutputReader(proc))
    try:
        for proc, url in servers:
            wait_for(f"{url}/healthz", proc)
        yield {"env": env, "servers": servers, "key": json.loads(seeded.stdout)["api_key"], "stream": stream}
    finally:
        for proc, _ in servers:
            stop(proc)
        for reader in readers:
            assert "Traceback" not in reader.close()
        client = redis.Redis.from_url(REDIS_URL)
        client.delete(stream)
        client.close()


def _chat(url: str, key: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"}, timeout=10)


def test_a_key_revoked_on_one_side_is_refused_by_every_worker_within_a_second(cluster):
    key = cluster["key"]
    urls = [url for _, url in cluster["servers"]]
    assert [_chat(url, key).status_code for url in urls] == [200, 200]  # both have the key cached now

    public_id = key.split("_")[1]
    revoke = (
        "from subscriptions.models import ApiKey; from subscriptions.services import api_key_revoke;"
        "from tenants.services import SYSTEM;"
        f"api_key_revoke(key=ApiKey.objects.get(public_id='{public_id}'), actor=SYSTEM)"
    )
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", revoke], cwd=ROOT, env=cluster["env"], check=True, timeout=60
    )
    revoked_at = time.monotonic()
    refused_after: dict[str, float] = {}
    while len(refused_after) < len(urls) and time.monotonic() - revoked_at < 5:
        for url in urls:
            if url not in refused_after and _chat(url, key).status_code == 401:
                refused_after[url] = time.monotonic() - revoked_at
        time.sleep(0.02)

    assert set(refused_after) == set(urls)
    assert max(refused_after.values()) < 1.0, refused_after


LIMITED_KEY = """
from gateway.models import AiApi
from gateway.services import plan_create
from subscriptions.services import api_key_create, application_create, subscription_request
from tenants.models import Tenant
from tenants.services import SYSTEM

api = AiApi.all_tenants.get(slug="assistant")
plan = plan_create(api=api, slug="exactly-60", name="Exactly 60", actor=SYSTEM, requests_per_minute=60,
                   requires_approval=False)
app = application_create(tenant=Tenant.objects.get(slug="globex"), slug="limited", name="Limited", actor=SYSTEM)
subscription_request(application=app, api=api, plan=plan, actor=SYSTEM)
print(api_key_create(application=app, name="limited", actor=SYSTEM)[1])
"""


def test_a_limit_of_sixty_per_minute_shared_by_two_workers_admits_exactly_sixty(cluster):
    made = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", LIMITED_KEY],
        cwd=ROOT, env=cluster["env"], check=True, timeout=60, capture_output=True, text=True,
    )  # fmt: skip
    key = made.stdout.strip().splitlines()[-1]
    urls = [url for proc, url in cluster["servers"] if proc.poll() is None]
    assert len(urls) == 2  # runs before the shut-down test below

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=20, headers={"authorization": f"Bearer {key}"}) as client:
            calls = [client.post(f"{urls[n % 2]}/v1/chat/completions", json=CHAT) for n in range(100)]
            return await asyncio.gather(*calls)

    answers = asyncio.run(burst())

    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 60, statuses
    assert statuses.count(429) == 40
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 429} == {"rate_limit_exceeded"}
    assert {a.url.port for a in answers if a.status_code == 200} == {int(u.rsplit(":", 1)[1]) for u in urls}


BUDGETED_KEY = """
from gateway.models import AiApi
from gateway.services import (api_create, deployment_create, plan_create, provider_create, route_add, version_create,
                              version_set_status)
from subscriptions.services import api_key_create, application_create, subscription_request
from tenants.models import Tenant
from tenants.services import SYSTEM

acme, globex = Tenant.objects.get(slug="acme"), Tenant.objects.get(slug="globex")
api = api_create(tenant=acme, slug="slow", name="Slow", kind="chat", actor=SYSTEM, requires_approval=False)
version = version_create(api=api, version="v1", model_alias="slow-mini", actor=SYSTEM)
version_set_status(version=version, status="published", actor=SYSTEM)
provider = provider_create(tenant=acme, name="slow", kind="openai_compatible", actor=SYSTEM,
                           api_base="MOCK/latency/400/v1", credentials={"api_key": "sk-up"})
deployment = deployment_create(provider=provider, name="slow", model="gpt-4o-mini", actor=SYSTEM)
route_add(version=version, deployment=deployment, actor=SYSTEM)
plan = plan_create(api=api, slug="ten-calls", name="Ten calls", actor=SYSTEM, token_quota=QUOTA, quota_period="day")
app = application_create(tenant=globex, slug="budgeted", name="Budgeted", actor=SYSTEM)
subscription_request(application=app, api=api, plan=plan, actor=SYSTEM)
print(api_key_create(application=app, name="budgeted", actor=SYSTEM)[1])
"""


NEW_KEY = (
    "from subscriptions.models import Application; from subscriptions import services; "
    "from tenants.services import SYSTEM; app = Application.all_tenants.get(slug='globex-web'); "
    "print(services.api_key_create(application=app, name='live test', actor=SYSTEM)[1])"
)
SIGN_IN = (
    "from importlib import import_module; from django.conf import settings; from django.contrib import auth; "
    "from tenants.models import User; u = User.objects.get(email='owner@globex.test'); "
    "s = import_module(settings.SESSION_ENGINE).SessionStore(); s[auth.SESSION_KEY] = str(u.pk); "
    "s[auth.BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]; "
    "s[auth.HASH_SESSION_KEY] = u.get_session_auth_hash(); s.create(); print(s.session_key)"
)


def test_the_live_dashboard_sends_one_message_a_second_to_sockets_on_every_worker(cluster):
    """(Before the tests that stop a worker.) Two sockets on two processes: each gets one message per second
    (the tick lock picks one sender), with figures counted by both workers."""
    import websockets

    def shell(code: str) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=ROOT, env=cluster["env"], check=True, timeout=60, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]  # fmt: skip

    session, key = shell(SIGN_IN), shell(NEW_KEY)  # (the demo key may be revoked by an earlier test)
    urls = [url for _, url in cluster["servers"]]
    for url in urls:  # calls counted by each worker's own usage flush
        for _ in range(3):
            assert _chat(url, key).status_code == 200

    async def listen(url: str, seconds: float) -> list[dict]:
        headers = {"Cookie": f"sessionid={session}", "Origin": url}
        received = []
        async with websockets.connect(
            url.replace("http", "ws") + "/ws/t/globex/live/", additional_headers=headers
        ) as ws:
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                try:
                    received.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
                except TimeoutError:
                    break
        return received

    async def both() -> list[list[dict]]:
        return list(await asyncio.gather(*(listen(url, 4.5) for url in urls)))

    for messages in asyncio.run(both()):
        seconds = [m["at"] for m in messages]
        assert 3 <= len(messages) <= 6, seconds  # about one a second, not one per worker per second
        assert len(set(seconds)) == len(seconds), seconds  # no second sent twice
        assert max(m["calls_last_minute"] for m in messages) >= 6  # both workers' calls (and earlier tests')


def test_a_budget_shared_by_two_workers_is_never_overspent(cluster, mock_llm_server):
    """100 calls at once over two workers, each reserving its worst case, against a budget of exactly ten."""
    from gateway.proxy.budgets import prompt_tokens

    body = {"model": "slow-mini", "messages": CHAT["messages"], "max_tokens": 10}
    quota = 10 * (prompt_tokens(body) + 10)
    script = BUDGETED_KEY.replace("MOCK", mock_llm_server.url).replace("QUOTA", str(quota))
    made = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT, env=cluster["env"], check=True, timeout=60, capture_output=True, text=True,
    )  # fmt: skip
    key = made.stdout.strip().splitlines()[-1]
    urls = [url for proc, url in cluster["servers"] if proc.poll() is None]
    assert len(urls) == 2

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=20, headers={"authorization": f"Bearer {key}"}) as client:
            calls = [client.post(f"{urls[n % 2]}/v1/chat/completions", json=body) for n in range(100)]
            return await asyncio.gather(*calls)

    answers = asyncio.run(burst())

    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 10, statuses  # the upstream answers in 400 ms: all 100 were in flight at once
    assert statuses.count(429) == 90
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 429} == {"insufficient_quota"}
    spent = sum(a.json()["usage"]["total_tokens"] for a in answers if a.status_code == 200)
    assert spent <= quota


def test_a_worker_shut_down_ships_every_usage_event_it_held(cluster, mock_llm_server):
    # A fresh key (the demo's was revoked above); one worker takes 60 calls and is then stopped.
    created = subprocess.run(
        [sys.executable, "manage.py", "seed_demo", "--json", "--mock-url", mock_llm_server.url],
        cwd=ROOT, env=cluster["env"], check=True, timeout=120, capture_output=True, text=True,
    )  # fmt: skip
    key = json.loads(created.stdout)["api_key"]
    proc, url = cluster["servers"][1]
    answers = [_chat(url, key) for _ in range(60)]
    stop(proc)

    client = redis.Redis.from_url(REDIS_URL)
    stored = [json.loads(fields[b"event"]) for _, fields in client.xrange(cluster["stream"])]
    client.close()
    ids = [a.headers["x-request-id"] for a in answers]
    assert [a.status_code for a in answers] == [200] * 60
    mine = [e for e in stored if e["request_id"] in set(ids)]
    assert sorted(e["request_id"] for e in mine) == sorted(ids)  # every call once: none lost, none twice
    assert all(e["prompt_tokens"] > 0 and e["status"] == 200 for e in mine)
