"""The gateway as applications see it: a live Gatehouse (uvicorn) on the seeded demo, the official openai SDK
unchanged, the mock LLM upstream behind it. Errors arrive as the SDK's own exception types."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import litellm
import openai
import pytest

from tests.servers import ROOT, OutputReader, embedded_env, free_port, stop, wait_for

pytestmark = pytest.mark.slow
HELLO = [{"role": "user", "content": "Hello, gateway"}]
# Beside the demo: a public API globex-web is not subscribed to, and one it is whose provider always answers 429.
EXTRA_CATALOG = """
from gateway import services as c
from subscriptions import services as s
from subscriptions.models import Application
from tenants.models import Tenant
from tenants.services import SYSTEM
acme = Tenant.objects.get(slug="acme")
app = Application.all_tenants.get(slug="globex-web")
for slug, alias in (("writer", "writer-large"), ("flaky", "flaky-model")):
    api = c.api_create(tenant=acme, slug=slug, name=slug, kind="chat", actor=SYSTEM, requires_approval=False)
    version = c.version_create(api=api, version="v1", model_alias=alias, actor=SYSTEM)
    c.version_set_status(version=version, status="published", actor=SYSTEM)
    plan = c.plan_create(api=api, slug="free", name="Free", actor=SYSTEM)
    if slug == "flaky":
        provider = c.provider_create(tenant=acme, name="busy", kind="openai_compatible",
                                     api_base="%s/fail/429/v1", actor=SYSTEM)
        deployment = c.deployment_create(provider=provider, name="busy", model="gpt-4o-mini", actor=SYSTEM)
        c.route_add(version=version, deployment=deployment, actor=SYSTEM)
        s.subscription_request(application=app, api=api, plan=plan, actor=SYSTEM)
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, mock_llm_server) -> Iterator[tuple[str, str]]:
    env = embedded_env(
        DEBUG="true", GATEHOUSE_ALLOW_PRIVATE_UPSTREAMS="true", GATEHOUSE_VAR_DIR=str(tmp_path_factory.mktemp("var"))
    )
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    seeded = subprocess.run(
        [*manage, "seed_demo", "--json", "--mock-url", mock_llm_server.url],
        cwd=ROOT, env=env, check=True, timeout=120, capture_output=True, text=True,
    )  # fmt: skip
    api_key = json.loads(seeded.stdout)["api_key"]
    subprocess.run(
        [*manage, "shell", "-c", EXTRA_CATALOG % mock_llm_server.url], cwd=ROOT, env=env, check=True, timeout=120
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--port", str(port), "--no-access-log"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = OutputReader(proc)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", proc)
        yield f"http://127.0.0.1:{port}", api_key
    finally:
        stop(proc)
        assert "Traceback" not in output.close()  # no failure was logged with a stack trace either


@pytest.fixture
def sdk(gateway, mock_llm) -> Iterator[openai.OpenAI]:
    base_url, api_key = gateway
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key=api_key, max_retries=0, timeout=10) as client:
        yield client


def test_chat_through_the_gateway(sdk, mock_llm):
    reply = sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    assert reply.choices[0].message.content == "echo: Hello, gateway"
    assert reply.model == "gpt-4o-mini"
    assert reply.usage.total_tokens > 0
    seen = mock_llm.journal[-1]
    assert seen["headers"]["authorization"] == "Bearer sk-mock-upstream-credential"  # the provider's, not the client's
    assert "gh_" not in json.dumps(seen)  # the client's key never reaches the provider


def test_streaming_chunks_arrive_incrementally(sdk):
    started = time.monotonic()
    arrivals = []
    stream = sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "one two three four"}],
        stream=True,
        extra_headers={"x-mock-stream-delay-ms": "100"},  # not forwarded: the gateway sends no client headers
    )
    text = ""
    for chunk in stream:
        arrivals.append(time.monotonic() - started)
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""

    assert text == "echo: one two three four"
    assert len(arrivals) >= 6


def test_streaming_passes_upstream_pacing_through(gateway, mock_llm):
    base_url, api_key = gateway
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "!reply a b c d"}]}
    times = []
    started = time.monotonic()
    with httpx.stream(
        "POST", f"{base_url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {api_key}"}, timeout=10
    ) as response:
        for _ in response.iter_raw():
            times.append(time.monotonic() - started)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert times  # a streamed body


def test_embeddings_and_models(sdk):
    vectors = sdk.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    models = {m.id for m in sdk.models.list()}

    assert len(vectors.data) == 2
    assert models == {"gpt-4o-mini", "text-embedding-3-small", "claude-haiku", "flaky-model"}


def test_chat_with_an_anthropic_model_through_the_sdk(sdk, mock_llm):
    reply = sdk.chat.completions.create(model="claude-haiku", messages=HELLO, max_tokens=100)
    chunks = list(sdk.chat.completions.create(model="claude-haiku", messages=HELLO, stream=True))

    assert reply.choices[0].message.content == "echo: Hello, gateway"
    assert reply.model == "claude-haiku"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: Hello, gateway"
    assert [r["path"] for r in mock_llm.journal] == ["/v1/messages", "/v1/messages"]
    assert mock_llm.journal[0]["headers"]["x-api-key"] == "sk-ant-mock-upstream-credential"


def test_litellm_can_use_gatehouse_as_an_openai_endpoint(gateway):
    base_url, api_key = gateway

    # Our own client, closed afterwards (litellm would otherwise cache one that outlives the test).
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key=api_key) as http:
        reply = litellm.completion(
            model="openai/gpt-4o-mini", api_base=f"{base_url}/v1", api_key=api_key, messages=HELLO, client=http
        )

    assert reply.choices[0].message.content == "echo: Hello, gateway"


def test_errors_surface_as_the_sdks_own_exceptions(gateway, sdk):
    base_url, _ = gateway
    with (
        openai.OpenAI(base_url=f"{base_url}/v1", api_key="gh_AAAAAAAA_" + "B" * 38, max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError) as unauthenticated,
    ):
        wrong.models.list()
    with pytest.raises(openai.NotFoundError) as unknown_model:
        sdk.chat.completions.create(model="gpt-5-ultra", messages=HELLO)
    with pytest.raises(openai.BadRequestError) as steering:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, extra_body={"api_base": "http://evil.test"})
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="gpt-4o-mini", messages=[])
    with pytest.raises(openai.PermissionDeniedError) as not_subscribed:
        sdk.chat.completions.create(model="writer-large", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as busy:
        sdk.chat.completions.create(model="flaky-model", messages=HELLO)

    assert not_subscribed.value.code == "subscription_required"
    assert busy.value.code == "rate_limit_exceeded"
    assert busy.value.response.headers["retry-after"]
    assert unauthenticated.value.code == "invalid_api_key"
    assert unknown_model.value.code == "model_not_found"
    assert steering.value.param == "api_base"


def test_rejected_steering_fields_never_reach_the_provider(sdk, mock_llm):
    for field in ("api_key", "mock_response", "custom_llm_provider", "extra_headers"):
        with pytest.raises(openai.BadRequestError):
            sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, extra_body={field: "x"})

    assert list(mock_llm.journal) == []


def test_every_gateway_response_has_a_request_id_and_no_store(gateway):
    base_url, api_key = gateway

    echoed = httpx.get(f"{base_url}/v1/models", headers={"authorization": f"Bearer {api_key}", "x-request-id": "abc-1"})
    unknown = httpx.get(f"{base_url}/v1/nothing")

    assert echoed.headers["x-request-id"] == "abc-1"
    assert echoed.headers["cache-control"] == "no-store"
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_url"
    assert len(unknown.headers["x-request-id"]) == 32
