"""The AI API catalog: APIs a publisher tenant offers, their versions, and the plans subscriptions buy.

Providers, deployments and routing join here with the gateway work; a version already records which model
alias (chat, embeddings) or prompt template it serves.
"""

from __future__ import annotations

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
