"""The mock LLM upstream, driven by the official SDKs over loopback, the way the gateway will use it."""

from __future__ import annotations

import base64
import signal
import struct
import subprocess
import sys
import time

import anthropic
import httpx
import openai
import pytest

from gateway.mock_llm import count_tokens, parse_directives, truncate_to_tokens
from tests.servers import ROOT, free_port, stop, wait_for

USER = [{"role": "user", "content": "Hello, world!"}]


@pytest.fixture
def client(mock_llm):
    with openai.OpenAI(base_url=f"{mock_llm.url}/v1", api_key="sk-test", max_retries=0, timeout=5) as sdk:
        yield sdk


@pytest.fixture
def claude(mock_llm):
    with anthropic.Anthropic(base_url=mock_llm.url, api_key="sk-ant-test", max_retries=0, timeout=5) as sdk:
        yield sdk


# --- OpenAI chat ----------------------------------------------------------------------------------------


def test_chat_echoes_the_last_user_message_with_usage_counted_from_the_texts(client):
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "Hello, world!"},
        ],
    )

    assert reply.choices[0].message.content == "echo: Hello, world!"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "gpt-4o-mini"
    prompt = count_tokens("Be brief.") + count_tokens("first question first answer") + count_tokens("Hello, world!")
    assert reply.usage.prompt_tokens == prompt == 11
    assert reply.usage.completion_tokens == count_tokens("echo: Hello, world!") == 6
    assert reply.usage.total_tokens == 17


def test_chat_reads_text_parts_of_multimodal_content(client):
    content = [{"type": "text", "text": "describe"}, {"type": "image_url", "image_url": {"url": "data:,"}}]
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])

    assert reply.choices[0].message.content == "echo: describe"


def test_reply_header_and_reply_command_set_the_answer(client):
    by_header = client.chat.completions.create(
        model="gpt-4o-mini", messages=USER, extra_headers={"x-mock-reply": "forty-two"}
    )
    by_message = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "!reply the answer is 42"}]
    )

    assert by_header.choices[0].message.content == "forty-two"
    assert by_message.choices[0].message.content == "the answer is 42"
    assert by_message.usage.completion_tokens == 4


def test_max_tokens_truncates_the_reply_like_a_real_model(client):
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "one two three four"}], max_tokens=3
    )

    assert reply.choices[0].message.content == "echo: one"
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 3


def test_streaming_delivers_the_reply_in_chunks_and_usage_last(client):
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream me a few words"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream me a few words"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 6
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == 5
    assert chunks[-1].usage.completion_tokens == 7
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_without_include_usage_sends_no_usage_chunk(client):
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True))

    assert all(c.choices for c in chunks)
    assert all(getattr(c, "usage", None) is None for c in chunks)


def test_stream_ends_with_done_marker_on_the_wire(mock_llm):
    body = {"model": "gpt-4o-mini", "messages": USER, "stream": True}
    response = httpx.post(f"{mock_llm.url}/v1/chat/completions", json=body, timeout=5)

    assert response.headers["content-type"] == "text/event-stream"
    assert response.text.rstrip().endswith("data: [DONE]")


def test_invalid_requests_get_openai_error_bodies(mock_llm):
    missing = httpx.post(f"{mock_llm.url}/v1/chat/completions", json={"model": "gpt-4o-mini"}, timeout=5)
    not_json = httpx.post(f"{mock_llm.url}/v1/chat/completions", content=b"{nope", timeout=5)
    unknown = httpx.post(f"{mock_llm.url}/v1/nothing-here", json={}, timeout=5)

    assert missing.status_code == 400
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert not_json.status_code == 400
    assert unknown.status_code == 404


# --- embeddings and models -------------------------------------------------------------------------------


def test_embeddings_are_deterministic_unit_vectors_in_base64_as_the_sdk_asks(client, mock_llm):
    first = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta gamma"])
    again = client.embeddings.create(model="text-embedding-3-small", input="alpha")

    assert [d.index for d in first.data] == [0, 1]
    assert first.data[0].embedding == again.data[0].embedding
    assert first.data[0].embedding != first.data[1].embedding
    assert sum(v * v for v in first.data[0].embedding) == pytest.approx(1.0, abs=1e-5)
    assert first.usage.prompt_tokens == 3
    assert mock_llm.journal[0]["body"]["encoding_format"] == "base64"  # the SDK's default


def test_embeddings_honour_float_format_and_dimensions(mock_llm):
    body = {"model": "text-embedding-3-small", "input": "alpha", "dimensions": 4, "encoding_format": "float"}
    as_floats = httpx.post(f"{mock_llm.url}/v1/embeddings", json=body, timeout=5).json()
    as_b64 = httpx.post(f"{mock_llm.url}/v1/embeddings", json={**body, "encoding_format": "base64"}, timeout=5).json()

    vector = as_floats["data"][0]["embedding"]
    assert len(vector) == 4
    decoded = struct.unpack("<4f", base64.b64decode(as_b64["data"][0]["embedding"]))
    assert decoded == pytest.approx(vector, abs=1e-6)


def test_models_lists_chat_and_embedding_models(client):
    ids = {model.id for model in client.models.list()}

    assert {"gpt-4o-mini", "text-embedding-3-small", "claude-3-5-haiku-latest"} <= ids


# --- Anthropic -------------------------------------------------------------------------------------------


def test_anthropic_sdk_gets_a_message_with_usage(claude):
    message = claude.messages.create(
        model="claude-3-5-haiku-latest",
        max_tokens=100,
        system="You are terse.",
        messages=[{"role": "user", "content": "Hello, Claude"}],
    )

    assert message.content[0].text == "echo: Hello, Claude"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == count_tokens("You are terse.") + count_tokens("Hello, Claude") == 7
    assert message.usage.output_tokens == count_tokens("echo: Hello, Claude") == 5


def test_anthropic_sdk_streams_text_and_final_usage(claude):
    with claude.messages.stream(
        model="claude-3-5-haiku-latest",
        max_tokens=3,
        messages=[{"role": "user", "content": [{"type": "text", "text": "a b c d e"}]}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == "echo: a"
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 3


def test_anthropic_requires_max_tokens_like_the_real_api(mock_llm):
    body = {"model": "claude-3-5-haiku-latest", "messages": USER}
    response = httpx.post(f"{mock_llm.url}/v1/messages", json=body, timeout=5)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_anthropic_faults_use_anthropic_error_types(claude):
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude.messages.create(
            model="claude-3-5-haiku-latest",
            max_tokens=10,
            messages=USER,
            extra_headers={"x-mock-fail": "429"},
        )
    assert caught.value.body["error"]["type"] == "rate_limit_error"


# --- faults and delays -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        ("500", openai.InternalServerError, 500),
        ("503", openai.InternalServerError, 503),
        ("429", openai.RateLimitError, 429),
    ],
)
def test_status_faults_answer_with_that_status(client, fault, error, status):
    with pytest.raises(error) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=USER, extra_headers={"x-mock-fail": fault})

    assert caught.value.status_code == status
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "1"


def test_timeout_fault_holds_the_request_until_the_client_gives_up(client):
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.5).chat.completions.create(
            model="gpt-4o-mini", messages=USER, extra_headers={"x-mock-fail": "timeout"}
        )
    assert 0.4 < time.monotonic() - started < 3


def test_reset_fault_drops_the_connection(client):
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o-mini", messages=USER, extra_headers={"x-mock-fail": "reset"})


def test_badjson_fault_sends_a_truncated_body(mock_llm, client):
    raw = httpx.post(
        f"{mock_llm.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": USER},
        headers={"x-mock-fail": "badjson"},
        timeout=5,
    )
    assert raw.status_code == 200
    with pytest.raises(ValueError, match="Expecting"):
        raw.json()
    with pytest.raises(ValueError, match="Expecting"):  # what a careless client sees; the gateway must map it
        client.chat.completions.create(model="gpt-4o-mini", messages=USER, extra_headers={"x-mock-fail": "badjson"})


def test_path_prefix_directives_apply_to_every_request_under_them(mock_llm):
    with (
        openai.OpenAI(base_url=f"{mock_llm.url}/fail/503/v1", api_key="x", max_retries=0) as failing,
        openai.OpenAI(base_url=f"{mock_llm.url}/latency/300/v1", api_key="x", max_retries=0) as slow,
    ):
        with pytest.raises(openai.InternalServerError):
            failing.chat.completions.create(model="gpt-4o-mini", messages=USER)
        started = time.monotonic()
        slow.chat.completions.create(model="gpt-4o-mini", messages=USER)
        assert time.monotonic() - started >= 0.3


def test_header_directives_override_the_path(mock_llm):
    with (
        openai.OpenAI(base_url=f"{mock_llm.url}/fail/503/v1", api_key="x", max_retries=0) as client,
        pytest.raises(openai.RateLimitError),
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=USER, extra_headers={"x-mock-fail": "429"})


def test_stream_delay_spaces_out_the_chunks(client):
    started = time.monotonic()
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=USER, stream=True, extra_headers={"x-mock-stream-delay-ms": "50"}
        )
    )
    # role chunk + 3 content chunks + finish chunk + [DONE], each after a 50 ms pause
    assert len(chunks) == 5
    assert time.monotonic() - started >= 0.3


def test_bad_directives_are_refused_with_a_clear_message(mock_llm):
    response = httpx.post(
        f"{mock_llm.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": USER},
        headers={"x-mock-fail": "explode"},
        timeout=5,
    )

    assert response.status_code == 400
    assert "fail must be one of" in response.json()["error"]["message"]


def test_parse_directives_splits_prefixes_from_the_api_path():
    directives, path = parse_directives("/latency/20/fail/429/stream-delay/5/v1/chat/completions", {})

    assert (directives.latency_ms, directives.fail, directives.stream_delay_ms) == (20, "429", 5)
    assert path == "/v1/chat/completions"
    assert parse_directives("/chat/completions", {})[1] == "/v1/chat/completions"


# --- journal ---------------------------------------------------------------------------------------------


def test_journal_shows_what_the_provider_saw_and_can_be_cleared(client, mock_llm):
    client.chat.completions.create(model="gpt-4o-mini", messages=USER, extra_headers={"x-trace": "t-1"})

    seen = httpx.get(f"{mock_llm.url}/__mock__/requests", timeout=5).json()["requests"]
    assert len(seen) == 1
    assert seen[0]["method"] == "POST"
    assert seen[0]["path"] == "/v1/chat/completions"
    assert seen[0]["headers"]["authorization"] == "Bearer sk-test"
    assert seen[0]["headers"]["x-trace"] == "t-1"
    assert seen[0]["body"]["messages"] == USER

    assert httpx.delete(f"{mock_llm.url}/__mock__/requests", timeout=5).status_code == 200
    assert httpx.get(f"{mock_llm.url}/__mock__/requests", timeout=5).json()["requests"] == []


def test_tokenizer_counts_words_and_punctuation():
    assert count_tokens("") == 0
    assert count_tokens("Hello, world!") == 4
    assert truncate_to_tokens("one two three", 2) == ("one two", True)
    assert truncate_to_tokens("one two", 5) == ("one two", False)
    assert truncate_to_tokens("one", 0) == ("", True)


@pytest.mark.slow
def test_mock_llm_command_serves_with_several_workers_and_kill_stops_them_all():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "mock_llm", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/v1/models", proc)
        replies = {
            httpx.post(f"{url}/v1/chat/completions", json={"model": "m", "messages": USER}).json()["choices"][0][
                "message"
            ]["content"]
            for _ in range(20)
        }
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    finally:
        output = stop(proc)

    assert replies == {"echo: Hello, world!"}
    assert "2 workers" in output
    with pytest.raises(httpx.TransportError):  # no worker process is left holding the port
        httpx.get(f"{url}/v1/models", timeout=1)
