"""PII: every detector and action, on requests and answers, streamed or not — and the provider never sees an
original, nor does a log."""

from __future__ import annotations

import json
import logging
import time

import pytest
from asgiref.sync import sync_to_async

from gateway import services as catalog
from gateway.policies import RulesError, validate_rules
from gateway.proxy import pii
from gateway.proxy.pii import CustomDetector, PiiBlocked, PiiRules, Scrubber, StreamRestorer
from subscriptions import services as subscription_services
from tenants import services as tenant_services
from tenants.tests.fixtures import make_user

SYSTEM = tenant_services.SYSTEM
EXAMPLES = {
    "email": ("Write to jane.doe@example.com today", "jane.doe@example.com"),
    "phone": ("Call +1 650-253-0000 tomorrow", "+1 650-253-0000"),
    "card": ("Card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111"),
    "iban": ("Pay to DE89 3704 0044 0532 0130 00 please", "DE89 3704 0044 0532 0130 00"),
    "ssn": ("SSN 123-45-6789 on file", "123-45-6789"),
    "ip": ("Server 192.168.1.20 and 2001:db8::1 are down", "192.168.1.20"),
    "secret": ("my key is AKIAIOSFODNN7EXAMPLE ok", "AKIAIOSFODNN7EXAMPLE"),
}
NEAR_MISSES = {
    "email": "jane.doe at example dot com",
    "phone": "order 12 of 2026",
    "card": "Card 4111 1111 1111 1112 (fails Luhn)",
    "iban": "DE89 3704 0044 0532 0130 01 (bad checksum)",
    "ssn": "000-12-3456",
    "ip": "version 999.1.1.1",
    "secret": "a sk-short key",
}


def scrubber(actions: dict[str, str], key: bytes = b"tenant-a", custom: tuple = ()) -> Scrubber:
    return Scrubber(PiiRules(tuple(actions.items()), custom, "consumer globex"), key)


# --- detectors and actions (pure) ---------------------------------------------------------------------------


@pytest.mark.parametrize("entity", list(EXAMPLES))
def test_each_detector_finds_its_kind_of_data_and_masks_it(entity):
    text, value = EXAMPLES[entity]

    masked = scrubber({entity: "mask"}).scrub(text, "x")

    assert value not in masked
    assert f"[{entity.upper()}]" in masked


@pytest.mark.parametrize("entity", list(NEAR_MISSES))
def test_each_detector_leaves_look_alikes_alone(entity):
    text = NEAR_MISSES[entity]

    assert scrubber({entity: "mask"}).scrub(text, "x") == text


def test_ipv6_is_found_as_well():
    assert scrubber({"ip": "mask"}).scrub(EXAMPLES["ip"][0], "x") == "Server [IP] and [IP] are down"


def test_redact_hides_even_the_kind_of_data():
    assert scrubber({"email": "redact"}).scrub("to a@b.io", "x") == "to [REDACTED]"


def test_pseudonyms_are_stable_within_a_tenant_and_differ_across_tenants():
    ours, again, theirs = (
        scrubber({"email": "pseudonymize"}),
        scrubber({"email": "pseudonymize"}),
        scrubber({"email": "pseudonymize"}, key=b"tenant-b"),
    )

    first = ours.scrub("a@b.io and c@d.io and a@b.io", "x")
    same = again.scrub("a@b.io", "x")
    other = theirs.scrub("a@b.io", "x")

    tokens = pii.PLACEHOLDER.findall(first)
    assert len(tokens) == 3
    assert tokens[0] == tokens[2] != tokens[1]
    assert same == f"[EMAIL_{tokens[0][1]}]"
    assert other != same
    assert ours.restore(first) == "a@b.io and c@d.io and a@b.io"
    assert theirs.restore(same) == same  # another tenant's placeholder means nothing here


def test_block_names_the_kind_and_where_never_the_value():
    with pytest.raises(PiiBlocked) as blocked:
        scrubber({"card": "block"}).request({"messages": [{"role": "user", "content": EXAMPLES["card"][0]}]})

    assert str(blocked.value) == "a payment card number in messages[0].content"


def test_every_text_of_a_request_is_inspected():
    body = {
        "messages": [
            {"role": "system", "content": "Admin is root@corp.example"},
            {"role": "user", "content": [{"type": "text", "text": "mail bob@corp.example"}]},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "send", "arguments": '{"to": "eve@corp.example"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sent to eve@corp.example"},
        ],
        "input": ["x@corp.example", "plain"],
    }

    scrubbed = json.dumps(scrubber({"email": "mask"}).request(body))

    assert "corp.example" not in scrubbed
    assert scrubbed.count("[EMAIL]") == 5
    assert '"tool_call_id": "c1"' in scrubbed  # ids and roles stay as they are


def test_a_pathological_tenant_pattern_cannot_stall_the_gateway():
    custom = (CustomDetector("SLOW", "(a+)+$", "mask"),)

    started = time.monotonic()
    scrubbed = scrubber({}, custom=custom).scrub("a" * 40 + "b", "x")

    assert time.monotonic() - started < 1
    assert scrubbed == "a" * 40 + "b"


def test_a_placeholder_split_across_streamed_chunks_is_restored():
    ours = scrubber({"email": "pseudonymize"})
    token = ours.scrub("jane@example.com", "x")
    pieces = ["Hi ", token[:3], token[3:9], token[9:] + "!", " Bye [not", " a placeholder]"]
    restorer = StreamRestorer(ours)

    streamed = [restorer.feed(0, piece) for piece in pieces] + [restorer.flush(0)]

    assert "".join(streamed) == "Hi jane@example.com! Bye [not a placeholder]"
    assert all("[EMAIL_" not in piece for piece in streamed)


def test_rules_with_a_broken_pattern_or_unknown_action_are_refused():
    with pytest.raises(RulesError, match=r"pii\.custom\.0\.pattern: not a valid pattern"):
        validate_rules({"pii": {"custom": [{"name": "X", "pattern": "(", "action": "mask"}]}})
    with pytest.raises(RulesError, match=r"pii\.entities\.email"):
        validate_rules({"pii": {"entities": {"email": "shred"}}})


# --- through the gateway -------------------------------------------------------------------------------------


@pytest.fixture
def pii_rules(request, served, market):
    catalog.policy_set(level="consumer", target=market.globex, rules={"pii": request.param}, actor=SYSTEM)


def _say(text: str, **extra) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


async def _post(gateway, served, body, path="/v1/chat/completions"):
    return await gateway.post(path, json=body, headers=served["auth"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pii_rules", [{"entities": {"email": "pseudonymize"}}], indirect=True)
async def test_pseudonymized_values_never_reach_the_provider_and_come_back_to_the_client(
    pii_rules, gateway, served, mock_llm, caplog
):
    with caplog.at_level(logging.DEBUG):
        answer = await _post(gateway, served, _say("Reply to jane.doe@example.com now"))

    sent = json.dumps(mock_llm.journal[-1]["body"])
    assert "jane.doe@example.com" not in sent
    assert "[EMAIL_" in sent
    assert answer.json()["choices"][0]["message"]["content"] == "echo: Reply to jane.doe@example.com now"
    assert "jane.doe@example.com" not in caplog.text


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pii_rules", [{"entities": {"email": "pseudonymize"}}], indirect=True)
async def test_a_stream_gets_the_originals_back(pii_rules, gateway, served, mock_llm):
    answer = await _post(gateway, served, _say("Reply to jane.doe@example.com now", stream=True))

    chunks = [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "echo: Reply to jane.doe@example.com now"
    assert "jane.doe@example.com" not in json.dumps(mock_llm.journal[-1]["body"])
    assert all(c["model"] == "gpt-4o-mini" for c in chunks)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pii_rules", [{"entities": {"phone": "mask", "ssn": "redact"}}], indirect=True)
async def test_masked_and_redacted_values_stay_hidden_both_ways(pii_rules, gateway, served, mock_llm):
    answer = await _post(gateway, served, _say("Call +1 650-253-0000, SSN 123-45-6789"))

    assert mock_llm.journal[-1]["body"]["messages"][0]["content"] == "Call [PHONE], SSN [REDACTED]"
    assert answer.json()["choices"][0]["message"]["content"] == "echo: Call [PHONE], SSN [REDACTED]"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pii_rules", [{"entities": {"card": "block", "secret": "block"}}], indirect=True)
async def test_blocked_data_refuses_the_call_without_repeating_it(pii_rules, gateway, served, mock_llm):
    from gateway.tests.fixtures import recorded_usage

    answer = await _post(gateway, served, _say(EXAMPLES["card"][0]))

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == ("pii_detected", "messages")
    assert error["message"] == (
        "The request contains a payment card number in messages[0].content, which is not allowed here"
        " (set by consumer globex)."
    )
    assert len(mock_llm.journal) == 0
    [event] = await recorded_usage()
    assert (event.status, event.error_code) == (400, "pii_detected")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pii_rules", [{"entities": {"email": "mask"}}], indirect=True)
async def test_embeddings_input_is_inspected(served_embeddings, pii_rules, gateway, served, market, mock_llm):
    body = {"model": "text-embedding-3-small", "input": ["a@b.io", "plain"]}

    answer = await _post(gateway, served, body, "/v1/embeddings")

    assert answer.status_code == 200
    assert mock_llm.journal[-1]["body"]["input"] == ["[EMAIL]", "plain"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "pii_rules", [{"custom": [{"name": "ECHO", "pattern": "echo: \\w+", "action": "mask"}]}], indirect=True
)
async def test_answers_are_inspected_too(pii_rules, gateway, served, mock_llm):
    # The request does not match the tenant's pattern; the mock's answer ("echo: hello") does.
    answer = await _post(gateway, served, _say("hello"))

    assert mock_llm.journal[-1]["body"]["messages"][0]["content"] == "hello"
    assert answer.json()["choices"][0]["message"]["content"] == "[ECHO]"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pii_rules", [{"entities": {"email": "pseudonymize"}}], indirect=True)
async def test_a_placeholder_never_maps_to_another_tenants_value(pii_rules, gateway, served, market, mock_llm):
    await _post(gateway, served, _say("jane.doe@example.com"))
    placeholder = mock_llm.journal[-1]["body"]["messages"][0]["content"]

    def other_tenant_key() -> str:
        initech = tenant_services.tenant_create(slug="initech", name="Initech", owner=make_user("o@initech.test"))
        rules = {"pii": {"entities": {"email": "pseudonymize"}}}
        catalog.policy_set(level="consumer", target=initech, rules=rules, actor=SYSTEM)
        app = subscription_services.application_create(tenant=initech, slug="app", name="App", actor=SYSTEM)
        subscription_services.subscription_request(application=app, api=market.api, plan=market.free, actor=SYSTEM)
        return subscription_services.api_key_create(application=app, name="k", actor=SYSTEM)[1]

    other = {"authorization": f"Bearer {await sync_to_async(other_tenant_key)()}"}
    theirs = await gateway.post("/v1/chat/completions", json=_say(f"!reply {placeholder}"), headers=other)

    assert theirs.json()["choices"][0]["message"]["content"] == placeholder
    assert "jane.doe@example.com" not in theirs.text


@pytest.mark.parametrize("entity", list(EXAMPLES))
@pytest.mark.parametrize("action", ["mask", "redact", "block", "pseudonymize"])
def test_each_detector_scrubs_answers_too(entity, action):
    text, value = EXAMPLES[entity]
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}

    scrubbed = scrubber({entity: action}).answer(answer)["choices"][0]["message"]["content"]

    assert value not in scrubbed  # the model's own output: never a placeholder, never refused once paid for
    assert ("[REDACTED]" if action == "redact" else f"[{entity.upper()}]") in scrubbed
