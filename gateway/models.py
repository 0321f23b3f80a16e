"""The AI API catalog (APIs, versions, plans) and what serves it (providers and their model deployments).

Routing — which deployments serve a version's model alias — joins here with the gateway hot path.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q

from tenants.models import Tenant
from tenants.scoping import TenantOwned


class AiApi(TenantOwned):
    """An AI API in the catalog, published by ``tenant``."""

    class Kind(models.TextChoices):
        CHAT = "chat", "Chat completions"
        EMBEDDINGS = "embeddings", "Embeddings"
        PROMPT = "prompt", "Prompt template"

    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public: every signed-in user"
        PRIVATE = "private", "Private: members of the publisher only"
        UNLISTED = "unlisted", "Unlisted: anyone with the link"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="apis")
    slug = models.SlugField(max_length=50)
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    summary = models.CharField(max_length=300, blank=True)
    description = models.TextField(blank=True, help_text="Markdown; sanitized when shown.")
    tags = models.JSONField(default=list, blank=True)
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PUBLIC)
    requires_approval = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwned.Meta):
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "slug"], name="api_slug_unique_per_publisher")]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.slug}"


class ApiVersion(models.Model):
    """One version of an API: draft → published → deprecated (with a sunset date) → retired."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        DEPRECATED = "deprecated", "Deprecated"
        RETIRED = "retired", "Retired"

    api = models.ForeignKey(AiApi, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=20, help_text="e.g. v1")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DRAFT)
    model_alias = models.CharField(
        max_length=100, blank=True, help_text="The model name clients send (chat, embeddings)."
    )
    prompt_template = models.TextField(blank=True, help_text="Prompt APIs: the template, with {variables}.")
    variables_schema = models.JSONField(default=dict, blank=True, help_text="Prompt APIs: JSON schema of variables.")
    sunset_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["api", "created_at"]
        constraints = [models.UniqueConstraint(fields=["api", "version"], name="version_unique_per_api")]

    def __str__(self) -> str:
        return f"{self.api} {self.version}"


class Plan(models.Model):
    """What a subscription buys: rate limits, a quota per period, the models allowed, whether approval is needed.

    Limits left empty mean "no limit at this level". Money is integer micro-USD ($1 = 1_000_000).
    """

    class Period(models.TextChoices):
        DAY = "day", "per day"
        MONTH = "month", "per month"

    api = models.ForeignKey(AiApi, on_delete=models.CASCADE, related_name="plans")
    slug = models.SlugField(max_length=50)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    quota_period = models.CharField(max_length=10, choices=Period.choices, default=Period.MONTH)
    token_quota = models.PositiveBigIntegerField(null=True, blank=True)
    cost_quota_micros = models.PositiveBigIntegerField(null=True, blank=True, help_text="micro-USD per period")
    allowed_models = models.JSONField(default=list, blank=True, help_text="Empty: every model alias of the API.")
    regions = models.JSONField(
        default=list, blank=True, help_text="Data residency: calls only go to deployments in these regions. Empty: any."
    )
    requires_approval = models.BooleanField(null=True, blank=True, help_text="Empty: as the API says.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["api", "name"]
        constraints = [
            models.UniqueConstraint(fields=["api", "slug"], name="plan_slug_unique_per_api"),
            models.CheckConstraint(
                condition=Q(requests_per_minute__gt=0) | Q(requests_per_minute=None), name="plan_rpm_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.api} / {self.name}"

    @property
    def needs_approval(self) -> bool:
        return self.api.requires_approval if self.requires_approval is None else self.requires_approval


class Provider(TenantOwned):
    """Where a publisher's models run: a provider kind litellm knows, an API base, encrypted credentials.

    ``credentials`` is Fernet ciphertext (portal/crypto.py); it is decrypted only to call the provider and never
    shown again after it is saved.
    """

    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI"
        OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible (vLLM, LM Studio, Together…)"
        AZURE = "azure", "Azure OpenAI"
        ANTHROPIC = "anthropic", "Anthropic"
        BEDROCK = "bedrock", "AWS Bedrock"
        GEMINI = "gemini", "Google Gemini"
        VERTEX_AI = "vertex_ai", "Google Vertex AI"
        MISTRAL = "mistral", "Mistral"
        OLLAMA = "ollama", "Ollama"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="providers")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    api_base = models.URLField(max_length=500, blank=True, help_text="Empty: the provider's public endpoint.")
    credentials = models.TextField(blank=True, help_text="Encrypted at rest.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantOwned.Meta):
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="provider_name_unique_per_tenant")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Deployment(models.Model):
    """One model at one provider, in one region, at a price. Prices are micro-USD per 1M tokens."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="deployments")
    name = models.SlugField(max_length=60)
    model = models.CharField(max_length=120, help_text="The provider's model name, e.g. claude-3-5-haiku-latest.")
    region = models.CharField(max_length=20, default="eu")
    input_price_micros_per_mtok = models.PositiveBigIntegerField(default=0)
    output_price_micros_per_mtok = models.PositiveBigIntegerField(default=0)
    timeout_seconds = models.PositiveIntegerField(default=60)
    # Upstream protection: what the provider grants this deployment (its own quota). Empty: no limit.
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["provider", "name"]
        constraints = [models.UniqueConstraint(fields=["provider", "name"], name="deployment_name_unique_per_provider")]

    def __str__(self) -> str:
        return f"{self.provider.name}/{self.name} ({self.model})"

    @property
    def input_price_usd(self) -> Decimal:
        return Decimal(self.input_price_micros_per_mtok) / 1_000_000

    @property
    def output_price_usd(self) -> Decimal:
        return Decimal(self.output_price_micros_per_mtok) / 1_000_000


class Route(models.Model):
    """Which deployments serve a version's model alias: primaries share traffic by ``weight``; fallbacks are
    tried in ``fallback_order`` (1, 2, …) when the primaries fail."""

    version = models.ForeignKey(ApiVersion, on_delete=models.CASCADE, related_name="routes")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="routes")
    weight = models.PositiveSmallIntegerField(default=100)
    fallback_order = models.PositiveSmallIntegerField(default=0, help_text="0: primary; 1, 2…: fallbacks in order.")

    class Meta:
        ordering = ["version", "fallback_order", "-weight"]
        constraints = [models.UniqueConstraint(fields=["version", "deployment"], name="route_unique_per_version")]

    def __str__(self) -> str:
        return f"{self.version} → {self.deployment}"


class Policy(models.Model):
    """Rules (gateway/policies.py ``RULES_SCHEMA``) attached at one level: the platform, a publisher tenant, an
    API, an API version (the publisher's side), or a consumer tenant, an application, a key (the consumer's side).

    One policy per attachment point; ``tenant`` is the tenant that owns it (None for the platform default).
    How the levels combine is in gateway/policies.py; the gateway sees the result in its access snapshot.
    """

    class Level(models.TextChoices):
        PLATFORM = "platform", "Platform default"
        PUBLISHER = "publisher", "Publisher (every API it publishes)"
        API = "api", "API"
        VERSION = "version", "API version"
        CONSUMER = "consumer", "Consumer tenant (all its applications)"
        APPLICATION = "application", "Application"
        KEY = "key", "API key"

    level = models.CharField(max_length=12, choices=Level.choices)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="policies")
    api = models.ForeignKey(AiApi, null=True, blank=True, on_delete=models.CASCADE, related_name="policies")
    version = models.ForeignKey(ApiVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="policies")
    application = models.ForeignKey(
        "subscriptions.Application", null=True, blank=True, on_delete=models.CASCADE, related_name="policies"
    )
    key = models.ForeignKey(
        "subscriptions.ApiKey", null=True, blank=True, on_delete=models.CASCADE, related_name="policies"
    )
    rules = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["level", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["level"], condition=Q(level="platform"), name="one_platform_policy"),
            models.UniqueConstraint(
                fields=["level", "tenant"], condition=Q(level__in=["publisher", "consumer"]), name="one_tenant_policy"
            ),
            models.UniqueConstraint(fields=["api"], condition=Q(level="api"), name="one_api_policy"),
            models.UniqueConstraint(fields=["version"], condition=Q(level="version"), name="one_version_policy"),
            models.UniqueConstraint(
                fields=["application"], condition=Q(level="application"), name="one_application_policy"
            ),
            models.UniqueConstraint(fields=["key"], condition=Q(level="key"), name="one_key_policy"),
            models.CheckConstraint(
                condition=Q(level="platform", tenant=None) | (~Q(level="platform") & Q(tenant__isnull=False)),
                name="policy_tenant_unless_platform",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_level_display()} policy ({self.label})"

    @property
    def label(self) -> str:
        """Where the policy is set, as the pages and the gateway's messages name it."""
        level = self.Level
        if self.level == level.PLATFORM:
            return "platform default"
        if self.level in (level.PUBLISHER, level.CONSUMER):
            return f"{self.level} {self.tenant.slug if self.tenant else '?'}"
        if self.level == level.API:
            return f"API {self.api}"
        if self.level == level.VERSION:
            return f"API {self.version}"
        if self.level == level.APPLICATION:
            return f"application {self.application.slug if self.application else '?'}"
        return f"key gh_{self.key.public_id if self.key else '?'}"


class PolicyDocumentVersion(models.Model):
    """One applied version of a tenant's policy document (gateway/policy_documents.py): kept, so any of them can
    be looked at again and rolled back to (which applies it as a new version)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="policy_versions")
    number = models.PositiveIntegerField()
    document = models.JSONField()
    changes = models.JSONField(default=list, help_text="The diff it applied, one line per setting.")
    created_by = models.ForeignKey("tenants.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["tenant", "-number"]
        constraints = [models.UniqueConstraint(fields=["tenant", "number"], name="policy_version_unique")]

    def __str__(self) -> str:
        return f"policies of {self.tenant.slug} v{self.number}"
