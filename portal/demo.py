"""The demo data of SPEC §5, created idempotently through the apps' services.

Grows with the product: each app's models add their part of the demo here (catalog, plans, keys, policies).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from django.db import transaction

from gateway import services as catalog_services
from gateway.models import AiApi, ApiVersion, Plan, Provider
from subscriptions import services as subscription_services
from subscriptions.models import ApiKey, Application, Subscription
from tenants import selectors as tenant_selectors
from tenants import services as tenant_services
from tenants.models import Tenant, User
from tenants.permissions import Role

DEMO_PASSWORD = "gatehouse-demo"  # noqa: S105 - published on purpose: demo accounts only, refused with DEBUG off

TENANTS = [
    # slug, name, what the tenant does in the demo
    ("acme", "Acme AI Platform", "publisher"),
    ("globex", "Globex Corporation", "consumer"),
]
USERS = [
    # e-mail, tenant slug, role
    ("owner@acme.test", "acme", Role.OWNER),
    ("admin@acme.test", "acme", Role.ADMIN),
    ("finance@acme.test", "acme", Role.FINANCE),
    ("owner@globex.test", "globex", Role.OWNER),
    ("dev@globex.test", "globex", Role.DEVELOPER),
]
OPERATOR_EMAIL = "ops@gatehouse.test"


@dataclass
class DemoUser:
    email: str
    password: str
    tenant: str | None
    role: str


@dataclass
class DemoSummary:
    base_url: str
    mock_url: str
    api_key: str | None
    users: list[DemoUser] = field(default_factory=list)
    tenants: list[dict[str, str]] = field(default_factory=list)
    operator: DemoUser | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _user(email: str, password: str, *, is_superuser: bool = False) -> User:
    user = tenant_selectors.user_by_email(email=email)
    if user is None:
        return tenant_services.user_create(
            email=email, password=password, email_verified=True, is_staff=is_superuser, is_superuser=is_superuser
        )
    # Re-seeding restores the published password, so the printed logins always work.
    if not user.check_password(password):
        tenant_services.user_set_password(user=user, password=password)
    return user


@transaction.atomic
def demo_seed(*, base_url: str, mock_url: str, password: str = DEMO_PASSWORD) -> DemoSummary:
    """Create (or bring back) the demo tenants and users. Safe to run any number of times."""
    summary = DemoSummary(base_url=base_url, mock_url=mock_url, api_key=None)
    users = {email: _user(email, password) for email, _, _ in USERS}
    owners = {slug: users[email] for email, slug, role in USERS if role == Role.OWNER}

    tenants: dict[str, Tenant] = {}
    for slug, name, kind in TENANTS:
        tenant = tenant_selectors.tenant_by_slug(slug=slug)
        if tenant is None:
            tenant = tenant_services.tenant_create(slug=slug, name=name, owner=owners[slug])
        tenants[slug] = tenant
        summary.tenants.append({"slug": slug, "name": tenant.name, "kind": kind})

    for email, slug, role in USERS:
        if tenant_selectors.membership_of(tenant=tenants[slug], user=users[email]) is None:
            tenant_services.membership_create(tenant=tenants[slug], user=users[email], role=role)
        summary.users.append(DemoUser(email=email, password=password, tenant=slug, role=role.value))

    _user(OPERATOR_EMAIL, password, is_superuser=True)
    summary.operator = DemoUser(email=OPERATOR_EMAIL, password=password, tenant=None, role="platform-operator")
    summary.api_key = _catalog_and_access(tenants["acme"], tenants["globex"], users, mock_url)
    return summary


SUMMARIZE_TEMPLATE = "Summarize the following text in three sentences:\n\n{text}"
SUMMARIZE_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 20000}},
    "required": ["text"],
    "additionalProperties": False,
}
APIS = [
    # slug, name, kind, model alias, requires approval, summary
    ("assistant", "Assistant", "chat", "gpt-4o-mini", True, "General-purpose chat assistant for internal tools."),
    ("embed", "Embeddings", "embeddings", "text-embedding-3-small", False, "Text embeddings for search and RAG."),
    ("summarize", "Summarize", "prompt", "gpt-4o-mini", False, "Three-sentence summaries of any text."),
    ("claude", "Claude assistant", "chat", "claude-haiku", False, "Chat on an Anthropic model, in OpenAI's format."),
]


def _api(acme: Tenant, actor: tenant_services.Actor, spec: tuple[str, str, str, str, bool, str]) -> AiApi:
    slug, name, kind, alias, approval, summary = spec
    api = AiApi.objects.for_tenant(acme).filter(slug=slug).first()
    if api is None:
        api = catalog_services.api_create(
            tenant=acme,
            slug=slug,
            name=name,
            kind=kind,
            actor=actor,
            summary=summary,
            description=f"## {name}\n\n{summary}\n\nServed in the **{acme.default_region.upper()}** region.",
            tags=["demo", kind],
            requires_approval=approval,
        )
    if not api.versions.exists():
        version = catalog_services.version_create(
            api=api,
            version="v1",
            actor=actor,
            model_alias=alias,
            prompt_template=SUMMARIZE_TEMPLATE if kind == "prompt" else "",
            variables_schema=SUMMARIZE_SCHEMA if kind == "prompt" else None,
        )
        catalog_services.version_set_status(version=version, status=ApiVersion.Status.PUBLISHED, actor=actor)
    if not api.plans.filter(slug="standard").exists():
        limits: dict[str, object] = {"description": "For production applications."}
        if slug == "assistant":
            # SPEC §5: 120 requests/min and 200k tokens/min per application, a $50 monthly budget.
            limits.update(requests_per_minute=120, tokens_per_minute=200_000, cost_quota_micros=50_000_000)
        catalog_services.plan_create(api=api, slug="standard", name="Standard", actor=actor, **limits)
    return api


def _serve_from_mock(acme: Tenant, actor: tenant_services.Actor, apis: list[AiApi], mock_url: str) -> None:
    """Acme's models run on the mock upstream (an OpenAI-compatible provider at ``mock_url``)."""
    provider = Provider.objects.for_tenant(acme).filter(name="mock-openai").first()
    if provider is None:
        provider = catalog_services.provider_create(
            tenant=acme,
            name="mock-openai",
            kind=Provider.Kind.OPENAI_COMPATIBLE,
            api_base=f"{mock_url}/v1",
            credentials={"api_key": "sk-mock-upstream-credential"},
            actor=actor,
        )
    # The same mock speaks Anthropic's API: the claude-haiku alias is translated by litellm on its way there.
    anthropic = Provider.objects.for_tenant(acme).filter(name="mock-anthropic").first()
    if anthropic is None:
        anthropic = catalog_services.provider_create(
            tenant=acme,
            name="mock-anthropic",
            kind=Provider.Kind.ANTHROPIC,
            api_base=mock_url,
            credentials={"api_key": "sk-ant-mock-upstream-credential"},
            actor=actor,
        )
    deployments = {}
    for at, name, model, alias in (
        (provider, "gpt-4o-mini-eu", "gpt-4o-mini", "gpt-4o-mini"),
        (provider, "embed-small-eu", "text-embedding-3-small", "text-embedding-3-small"),
        (anthropic, "claude-haiku-eu", "claude-3-5-haiku-latest", "claude-haiku"),
    ):
        deployment = at.deployments.filter(name=name).first()
        if deployment is None:
            deployment = catalog_services.deployment_create(
                provider=at, name=name, model=model, region="eu", actor=actor
            )
        deployments[alias] = deployment
    for api in apis:
        for version in api.versions.all():
            deployment = deployments.get(version.model_alias)
            if deployment is not None and not version.routes.filter(deployment=deployment).exists():
                catalog_services.route_add(version=version, deployment=deployment, actor=actor)


def _catalog_and_access(acme: Tenant, globex: Tenant, users: dict[str, User], mock_url: str) -> str:
    """Acme publishes three APIs; Globex's application holds approved subscriptions and one fresh key."""
    publisher = tenant_services.Actor(user=users["owner@acme.test"])
    approver = tenant_services.Actor(user=users["admin@acme.test"])
    developer = tenant_services.Actor(user=users["dev@globex.test"])
    apis = [_api(acme, publisher, spec) for spec in APIS]
    _serve_from_mock(acme, publisher, apis, mock_url)

    app = Application.objects.for_tenant(globex).filter(slug="globex-web").first()
    if app is None:
        app = subscription_services.application_create(
            tenant=globex, slug="globex-web", name="Globex Web", actor=developer, description="Globex's customer site."
        )
    for api in apis:
        subscription = app.subscriptions.filter(api=api, state__in=Subscription.LIVE_STATES).first()
        if subscription is None:
            subscription = subscription_services.subscription_request(
                application=app,
                api=api,
                plan=Plan.objects.get(api=api, slug="standard"),
                actor=developer,
                justification="Customer support assistant on globex.example.",
            )
        if subscription.state == Subscription.State.PENDING:
            subscription_services.subscription_approve(subscription=subscription, actor=approver, reason="Demo.")
        elif subscription.state == Subscription.State.SUSPENDED:
            subscription_services.subscription_resume(subscription=subscription, actor=approver)

    # The full key exists only when it is made: each seeding replaces the demo key, so the printed one works.
    for old in ApiKey.objects.filter(application=app, name="demo key", revoked_at=None):
        subscription_services.api_key_revoke(key=old, actor=developer)
    _, full_key = subscription_services.api_key_create(application=app, name="demo key", actor=developer)
    return full_key
