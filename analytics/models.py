"""Models of analytics: the call log (one ``UsageEvent`` per proxied call), later rolled up into usage and cost.

A usage event is written once: the gateway gives every call an ``event_id`` and the ingest ignores ids it has
already stored, so redelivery (a worker dying between insert and acknowledgement) never counts a call twice.
Labels (application, API, model, deployment) are copied in, so the log still reads after those rows are gone.
"""

from __future__ import annotations

from django.db import models

from tenants.models import Tenant
from tenants.scoping import TenantOwned


class UsageEvent(TenantOwned):
    """One call through the gateway, owned by the consumer tenant (whose key made it)."""

    class Endpoint(models.TextChoices):
        CHAT = "chat", "Chat completions"
        EMBEDDINGS = "embeddings", "Embeddings"
        PROMPT = "prompt", "Prompt API"
        MODELS = "models", "Models list"

    event_id = models.CharField(max_length=32, db_index=True)
    request_id = models.CharField(max_length=64)
    occurred_at = models.DateTimeField(db_index=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="usage_events")
    publisher = models.ForeignKey(
        Tenant, on_delete=models.SET_NULL, null=True, blank=True, related_name="served_usage_events"
    )
    application_id = models.PositiveBigIntegerField()
    application_slug = models.CharField(max_length=50)
    key_public_id = models.CharField(max_length=16)
    subscription_id = models.PositiveBigIntegerField(null=True, blank=True)
    api_id = models.PositiveBigIntegerField(null=True, blank=True)
    api_label = models.CharField(max_length=110, blank=True, help_text="publisher/api")
    endpoint = models.CharField(max_length=12, choices=Endpoint.choices)
    model = models.CharField(max_length=100, blank=True, help_text="The alias the client asked for.")
    deployment_id = models.PositiveBigIntegerField(null=True, blank=True)
    deployment_name = models.CharField(max_length=60, blank=True)
    provider_kind = models.CharField(max_length=30, blank=True)
    status = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=40, blank=True)
    is_stream = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost_micros = models.PositiveBigIntegerField(default=0, help_text="micro-USD")
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Streams: time to the first byte sent.")
    usage_is_estimated = models.BooleanField(
        default=False, help_text="The provider reported no usage (e.g. the client left mid-stream)."
    )
    cache_hit = models.BooleanField(default=False, help_text="Answered from the response cache: no tokens, no cost.")
    cached_tokens = models.PositiveIntegerField(default=0, help_text="Prompt tokens served from the provider cache.")
    upstream_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time spent waiting on the provider.")
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    region = models.CharField(max_length=20, blank=True, help_text="Where the deployment that answered runs.")
    policy_decisions = models.JSONField(default=list, blank=True, help_text="What policies did, e.g. flagged.")

    class Meta(TenantOwned.Meta):
        ordering = ["-occurred_at"]
        # Stored once per event: the gateway's event id with its time (the same on every redelivery). The time
        # is in the key so that PostgreSQL can range-partition the table by occurred_at (a unique constraint
        # on a partitioned table must contain the partition key) when a deployment outgrows trimming.
        constraints = [models.UniqueConstraint(fields=["occurred_at", "event_id"], name="usage_event_once")]
        indexes = [
            models.Index(fields=["tenant", "occurred_at"], name="usage_tenant_time"),
            models.Index(fields=["publisher", "occurred_at"], name="usage_publisher_time"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.endpoint} {self.model} → {self.status}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class CallPayload(TenantOwned):
    """A call's prompt and answer, masked, when a policy asks for payload logging (``payloads``).

    Masked in the gateway before it leaves the process (every kind of data the PII detectors know, on top of
    the call's own PII rules), kept until ``expires_at`` — a retention of its own, shorter than the call log's
    as a rule — and trimmed with the call log (``call_log_trim``). Found by the call's ``event_id``.
    """

    event_id = models.CharField(max_length=32, unique=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="call_payloads")
    request_text = models.TextField(blank=True, help_text="The request's messages / input / variables, as JSON.")
    answer_text = models.TextField(blank=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta(TenantOwned.Meta):
        pass

    def __str__(self) -> str:
        return f"payload of {self.event_id}"


class AlertKind(models.TextChoices):
    QUOTA_THRESHOLD = "quota_threshold", "Quota or budget threshold crossed"
    BUDGET_FORECAST = "budget_forecast", "Forecast to exceed the monthly budget"
    ERROR_RATE = "error_rate", "Error rate over a window"
    LATENCY_P95 = "latency_p95", "Latency p95 over a window"
    ANOMALY = "anomaly", "A key's traffic or spend far above its own baseline"


class AlertRule(TenantOwned):
    """What a tenant wants to hear about, and where to send it (e-mail, a signed webhook, or both).

    ``threshold`` reads by kind: quota_threshold → percent of the quota (fires on the gateway's crossings at or
    above it); error_rate → percent of calls with status ≥ 400; latency_p95 → milliseconds; anomaly → z-score
    of the key's last hour against its previous 24 hours; budget_forecast → ignored (``budget_micros`` is the
    line). Evaluated rules fire at most once per window (``AlertEvent.event_id`` names rule and window).
    """

    class Metric(models.TextChoices):
        REQUESTS = "requests", "Requests"
        SPEND = "spend", "Spend"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=30, choices=AlertKind.choices)
    is_active = models.BooleanField(default=True)
    threshold = models.FloatField(default=0)
    window_minutes = models.PositiveIntegerField(default=15, help_text="error_rate and latency_p95.")
    min_requests = models.PositiveIntegerField(default=20, help_text="No verdict on fewer calls than this.")
    budget_micros = models.PositiveBigIntegerField(default=0, help_text="budget_forecast: the month's budget.")
    metric = models.CharField(max_length=10, choices=Metric.choices, default=Metric.REQUESTS, help_text="anomaly.")
    email_to = models.CharField(max_length=500, blank=True, help_text="Comma-separated addresses.")
    webhook_url = models.URLField(max_length=500, blank=True)
    webhook_secret = models.TextField(blank=True, help_text="Fernet-encrypted HMAC key (portal/crypto.py).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantOwned.Meta):
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.name} ({self.kind})"

    @property
    def recipients(self) -> list[str]:
        return [address.strip() for address in self.email_to.split(",") if address.strip()]


class AlertEvent(TenantOwned):
    """Something a tenant should hear about: raised by the gateway (a quota crossing 80%, say) or by an
    evaluated rule, and delivered through the rules. ``event_id`` names the condition and its period or
    window, so the same alert is stored once however many workers noticed it."""

    Kind = AlertKind

    event_id = models.CharField(max_length=200, unique=True)
    occurred_at = models.DateTimeField(db_index=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="alert_events")
    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    kind = models.CharField(max_length=30, choices=AlertKind.choices)
    message = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)

    class Meta(TenantOwned.Meta):
        ordering = ["-occurred_at"]
        indexes = [models.Index(fields=["tenant", "occurred_at"], name="alert_tenant_time")]

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


class AlertDelivery(models.Model):
    """One alert sent through one channel of one rule; retried with backoff until delivered or given up.

    Unique per (alert, rule, channel): planning the same alert twice never sends it twice.
    """

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    alert = models.ForeignKey(AlertEvent, on_delete=models.CASCADE, related_name="deliveries")
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True, help_text="Safe to show: no secrets, no bodies.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["alert", "rule", "channel"], name="alert_delivery_once_per_channel")
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="alert_delivery_due")]

    def __str__(self) -> str:
        return f"{self.alert_id} via {self.channel}: {self.state}"


class RollupBacklog(models.Model):
    """An hour of the call log whose rollups must be computed again: written with the events themselves (same
    transaction), so an event that arrives late — or twice — always gets its bucket recomputed, exactly."""

    hour = models.DateTimeField(unique=True)

    def __str__(self) -> str:
        return f"roll up {self.hour:%Y-%m-%d %H}:00"


class UsageRollup(TenantOwned):
    """The call log summed per hour and per day by consumer tenant, application, key, API, model and deployment.

    Reports and dashboards read these, never the raw rows. Latency percentiles are exact: computed from the raw
    rows of the bucket each time it is rolled up (never merged from smaller buckets). Ids of things gone are
    kept as plain numbers; 0 stands for "none" (so the unique constraint holds without NULLs).
    """

    class Granularity(models.TextChoices):
        HOUR = "hour", "Hour"
        DAY = "day", "Day"

    granularity = models.CharField(max_length=4, choices=Granularity.choices)
    bucket_start = models.DateTimeField()
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="usage_rollups")
    publisher_id = models.PositiveBigIntegerField(default=0)
    application_id = models.PositiveBigIntegerField(default=0)
    application_slug = models.CharField(max_length=50, blank=True)
    key_public_id = models.CharField(max_length=16, blank=True)
    api_id = models.PositiveBigIntegerField(default=0)
    api_label = models.CharField(max_length=110, blank=True)
    model = models.CharField(max_length=100, blank=True)
    deployment_id = models.PositiveBigIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    cache_hits = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost_micros = models.PositiveBigIntegerField(default=0)
    latency_p50_ms = models.PositiveIntegerField(default=0)
    latency_p95_ms = models.PositiveIntegerField(default=0)
    latency_histogram = models.JSONField(
        default=dict, blank=True, help_text="analytics.sketch: mergeable, for percentiles over many rows."
    )

    class Meta(TenantOwned.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "granularity", "bucket_start", "tenant", "application_id", "key_public_id", "api_id", "model",
                    "deployment_id",
                ],
                name="usage_rollup_unique_bucket",
            )
        ]  # fmt: skip
        indexes = [
            models.Index(fields=["tenant", "granularity", "bucket_start"], name="rollup_tenant_time"),
            models.Index(fields=["publisher_id", "granularity", "bucket_start"], name="rollup_publisher_time"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.granularity} {self.bucket_start:%Y-%m-%d %H}:00 {self.model}"
