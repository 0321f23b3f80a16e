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
