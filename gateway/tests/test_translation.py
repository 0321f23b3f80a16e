"""OpenAI-format calls to a non-OpenAI provider go through litellm: proven against the mock's Anthropic API."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from gateway.proxy import app as proxy
from gateway.tests.fixtures import recorded_usage

pytestmark = pytest.mark.django_db(transaction=True)
CHAT = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}],
}


@pytest.fixture
def on_anthropic(served, mock_llm):
    """The assistant's alias now runs on an Anthropic deployment (the mock's /v1/messages)."""
    served["route_to"](
        mock_llm.url,
        "claude",
        kind="anthropic",
        model="claude-3-5-haiku-latest",
        input_price_micros_per_mtok=800_000,
        output_price_micros_per_mtok=4_000_000,
    )
    mock_llm.journal.clear()
    return served


async def test_a_chat_call_is_translated_to_anthropic_messages_and_back(gateway, on_anthropic, mock_llm):
    response = await gateway.post("/v1/chat/completions", json={**CHAT, "max_tokens": 64}, headers=on_anthropic["auth"])

    [sent] = mock_llm.journal
    answer = response.json()
    [event] = await recorded_usage()

    assert response.status_code == 200
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == "sk-up"  # the provider's credential, in Anthropic's header
    assert sent["body"]["system"][0]["text"] == "Be brief."  # OpenAI's system message → Anthropic's system field
    assert sent["body"]["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}]
    assert sent["body"]["max_tokens"] == 64
    assert answer["object"] == "chat.completion"
    assert answer["model"] == "gpt-4o-mini"
    assert answer["choices"][0]["message"]["content"] == "echo: Hi there"
    assert (event.provider_kind, event.deployment_name) == ("anthropic", "claude")
    assert event.prompt_tokens == answer["usage"]["prompt_tokens"] > 0
    assert event.cost_micros == (event.prompt_tokens * 800_000 + event.completion_tokens * 4_000_000 + 500_000) // 10**6


async def test_a_streamed_chat_is_translated_chunk_by_chunk(gateway, on_anthropic, mock_llm):
    response = await gateway.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=on_anthropic["auth"])

    chunks = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    [event] = await recorded_usage()

    assert response.headers["content-type"] == "text/event-stream"
    assert mock_llm.journal[-1]["body"]["stream"] is True
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "echo: Hi there"
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-4o-mini" for c in chunks)
    assert all("usage" not in c for c in chunks)  # not asked for; still billed:
    assert event.completion_tokens > 0
    assert response.text.rstrip().endswith("data: [DONE]")


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [("429", 429, "rate_limit_exceeded"), ("500", 502, "upstream_error"), ("timeout", 504, "upstream_timeout")],
)
async def test_anthropic_failures_map_like_any_other(gateway, on_anthropic, mock_llm, fault, status, code):
    await sync_to_async(on_anthropic["route_to"])(
        f"{mock_llm.url}/fail/{fault}", f"claude-{fault}", kind="anthropic", model="claude-3-5-haiku-latest", timeout=1
    )

    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=on_anthropic["auth"])

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert "anthropic" not in response.text.lower()
    assert "127.0.0.1" not in response.text


async def test_a_failing_anthropic_deployment_falls_back_to_an_openai_compatible_one(gateway, on_anthropic, mock_llm):
    await sync_to_async(on_anthropic["route_to"])(
        f"{mock_llm.url}/fail/503", "claude-down", kind="anthropic", model="claude-3-5-haiku-latest"
    )
    await sync_to_async(on_anthropic["route_to"])(f"{mock_llm.url}/v1", "openai-up", fallback_order=1, replace=False)

    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=on_anthropic["auth"])

    assert response.status_code == 200
    assert [r["path"] for r in mock_llm.journal] == ["/fail/503/v1/messages", "/v1/chat/completions"]


async def test_translated_calls_go_through_the_ssrf_guard_too(gateway, on_anthropic, mock_llm, settings):
    settings.GATEHOUSE_ALLOW_PRIVATE_UPSTREAMS = False
    await proxy.close()  # the next call opens a client under the strict setting

    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=on_anthropic["auth"])

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_blocked"
    assert not mock_llm.journal


async def test_the_door_transport_refuses_private_addresses_found_by_dns(on_anthropic):
    """Below the literal-address check: a host name that resolves to loopback is refused at connect time."""
    import httpx

    from portal.http_client import DoorTransport, HttpClient

    door = HttpClient(allow_private=False)
    async with httpx.AsyncClient(transport=DoorTransport(door)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post("http://localhost:9/v1/messages", json={})
    await door.close()
