"""Prompt APIs: POST /v1/apis/<publisher>/<api>[/<version>] with variables checked by the version's JSON schema,
rendered by plain substitution, answered in chat-completion format."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from gateway import prompts
from gateway import services as catalog
from portal.errors import DomainError
from subscriptions import services as subscription_services
from tenants import services as tenant_services

pytestmark = pytest.mark.django_db(transaction=True)
SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 200}, "tone": {"enum": ["dry", "warm"]}},
    "required": ["text"],
    "additionalProperties": False,
}
TEMPLATE = "Summarize in a {tone} tone: {text} {{not a variable}}"


@pytest.fixture
def prompt_api(market, served, mock_llm):
    """acme/summarize v1 (published) running on the mock's gpt-4o-mini, with globex-web subscribed."""
    actor = tenant_services.SYSTEM
    api = catalog.api_create(tenant=market.acme, slug="summarize", name="Summarize", kind="prompt", actor=actor)
    version = catalog.version_create(
        api=api, version="v1", actor=actor, model_alias="gpt-4o-mini", prompt_template=TEMPLATE, variables_schema=SCHEMA
    )
    catalog.version_set_status(version=version, status="published", actor=actor)
    deployment = market.acme.providers.get(name="mock").deployments.get()
    catalog.route_add(version=version, deployment=deployment, actor=actor)
    plan = catalog.plan_create(api=api, slug="free", name="Free", actor=actor, requires_approval=False)
    subscription_services.subscription_request(
        application=market.app, api=api, plan=plan, actor=market.actor(market.developer)
    )
    return api


async def test_variables_are_rendered_into_the_prompt_and_the_answer_is_a_chat_completion(
    gateway, served, prompt_api, mock_llm
):
    body = {"variables": {"text": "a long day", "tone": "dry"}, "max_tokens": 50}

    response = await gateway.post("/v1/apis/acme/summarize", json=body, headers=served["auth"])
    pinned = await gateway.post("/v1/apis/acme/summarize/v1", json=body, headers=served["auth"])

    assert response.status_code == 200
    assert pinned.status_code == 200
    assert response.json()["object"] == "chat.completion"
    sent = mock_llm.journal[-1]["body"]
    assert sent["messages"] == [{"role": "user", "content": "Summarize in a dry tone: a long day {not a variable}"}]
    assert sent["max_tokens"] == 50
    assert "variables" not in sent


async def test_a_prompt_api_streams_like_chat(gateway, served, prompt_api):
    body = {"variables": {"text": "x", "tone": "warm"}, "stream": True}

    response = await gateway.post("/v1/apis/acme/summarize", json=body, headers=served["auth"])

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.text.rstrip().endswith("data: [DONE]")


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({}, "variables: 'text' is a required property"),
        ({"text": ""}, "variables/text: '' should be non-empty"),
        ({"text": "x", "tone": "angry"}, "variables/tone: 'angry' is not one of ['dry', 'warm']"),
        ({"text": "x", "extra": "{__import__('os')}"}, "Additional properties are not allowed"),
        ("not an object", "'variables' must be a JSON object."),
    ],
)
async def test_variables_that_break_the_schema_are_a_400_saying_what_is_wrong(
    gateway, served, prompt_api, mock_llm, variables, message
):
    mock_llm.journal.clear()

    response = await gateway.post("/v1/apis/acme/summarize", json={"variables": variables}, headers=served["auth"])

    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert response.json()["error"]["param"] == "variables"
    assert not mock_llm.journal


async def test_unknown_options_and_steering_fields_are_refused(gateway, served, prompt_api, mock_llm):
    mock_llm.journal.clear()
    variables = {"text": "x", "tone": "dry"}

    model = await gateway.post(
        "/v1/apis/acme/summarize", json={"variables": variables, "model": "gpt-4o"}, headers=served["auth"]
    )
    steering = await gateway.post(
        "/v1/apis/acme/summarize", json={"variables": variables, "api_base": "http://x"}, headers=served["auth"]
    )

    assert (model.status_code, model.json()["error"]["param"]) == (400, "model")
    assert (steering.status_code, steering.json()["error"]["param"]) == (400, "api_base")
    assert not mock_llm.journal


async def test_missing_versions_apis_and_subscriptions_are_told_apart(gateway, served, prompt_api, market):
    body = {"variables": {"text": "x"}}

    def unsubscribed_prompt_api() -> None:
        api = catalog.api_create(
            tenant=market.acme, slug="translate", name="Translate", kind="prompt", actor=tenant_services.SYSTEM
        )
        version = catalog.version_create(
            api=api, version="v1", actor=tenant_services.SYSTEM, model_alias="gpt-4o-mini", prompt_template="Hi"
        )
        catalog.version_set_status(version=version, status="published", actor=tenant_services.SYSTEM)

    await sync_to_async(unsubscribed_prompt_api)()

    no_version = await gateway.post("/v1/apis/acme/summarize/v9", json=body, headers=served["auth"])
    no_api = await gateway.post("/v1/apis/acme/nothing", json=body, headers=served["auth"])
    not_subscribed = await gateway.post("/v1/apis/acme/translate", json=body, headers=served["auth"])
    anonymous = await gateway.post("/v1/apis/acme/summarize", json=body)
    wrong_method = await gateway.get("/v1/apis/acme/summarize", headers=served["auth"])

    assert (no_version.status_code, no_version.json()["error"]["code"]) == (404, "version_not_found")
    assert (no_api.status_code, no_api.json()["error"]["code"]) == (404, "api_not_found")
    assert (not_subscribed.status_code, not_subscribed.json()["error"]["code"]) == (403, "subscription_required")
    assert anonymous.status_code == 401
    assert wrong_method.status_code == 405


def test_rendering_is_substitution_only():
    evil = {"text": "{tone}", "tone": "{{7*7}} ${x} %(x)s {0.__class__}"}

    rendered = prompts.render("A {text} B {tone} C {{literal}} D {0.__class__} E", evil)

    # values are never re-read as templates, and nothing but {name} is ever replaced
    assert rendered == "A {tone} B {{7*7}} ${x} %(x)s {0.__class__} C {literal} D {0.__class__} E"


def test_non_string_values_go_in_as_json():
    assert prompts.render("{n} {items}", {"n": 3, "items": ["a", "b"]}) == '3 ["a", "b"]'


def test_publishers_cannot_save_a_template_whose_variables_the_schema_does_not_declare(market):
    api = catalog.api_create(tenant=market.acme, slug="p", name="P", kind="prompt", actor=tenant_services.SYSTEM)

    with pytest.raises(DomainError, match="does not declare: name"):
        catalog.version_create(
            api=api, version="v1", actor=tenant_services.SYSTEM, model_alias="m", prompt_template="Hi {name}"
        )
    with pytest.raises(DomainError, match="not valid JSON Schema"):
        catalog.version_create(
            api=api,
            version="v1",
            actor=tenant_services.SYSTEM,
            model_alias="m",
            prompt_template="Hi",
            variables_schema={"type": "no-such-type"},
        )
