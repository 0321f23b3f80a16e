from __future__ import annotations

from rest_framework import serializers

from subscriptions.models import Subscription


class ApplicationOutput(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField()


class ApplicationInput(serializers.Serializer):
    slug = serializers.RegexField(r"^[a-z0-9](?:[a-z0-9-]{1,48}[a-z0-9])$", max_length=50)
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(max_length=300, required=False, default="")


class KeyOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.SerializerMethodField(help_text="The key's public part; the secret is never returned.")
    scopes = serializers.ListField(child=serializers.IntegerField())
    ip_allowlist = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField(allow_null=True)
    valid_until = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_prefix(self, key: object) -> str:
        return f"gh_{key.public_id}_"  # type: ignore[attr-defined]


class KeyCreatedOutput(KeyOutput):
    key = serializers.CharField(help_text="The full key. Shown in this response only.")


class KeyInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)
    ip_allowlist = serializers.ListField(child=serializers.CharField(max_length=50), required=False, default=list)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class RotateInput(serializers.Serializer):
    grace_seconds = serializers.IntegerField(min_value=0, max_value=30 * 86400, required=False, default=86400)


class SubscriptionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    application = serializers.CharField(source="application.slug")
    consumer = serializers.CharField(source="consumer.slug")
    publisher = serializers.CharField(source="publisher.slug")
    api = serializers.CharField(source="api.slug")
    plan = serializers.CharField(source="plan.slug")
    state = serializers.ChoiceField(choices=Subscription.State.choices)
    justification = serializers.CharField()
    decision_reason = serializers.CharField()
    requested_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    ends_at = serializers.DateTimeField(allow_null=True)
    extra_token_quota = serializers.IntegerField()
    extra_models = serializers.ListField(child=serializers.CharField())


class SubscriptionRequestInput(serializers.Serializer):
    application = serializers.SlugField()
    publisher = serializers.SlugField()
    api = serializers.SlugField()
    plan = serializers.SlugField()
    justification = serializers.CharField(required=False, default="", max_length=2000)
    ends_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class DecisionInput(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "reject"])
    reason = serializers.CharField(required=False, default="", max_length=500)


class StateChangeInput(serializers.Serializer):
    action = serializers.ChoiceField(choices=["suspend", "resume", "revoke"])
    reason = serializers.CharField(required=False, default="", max_length=500)


class ChangeRequestOutput(serializers.Serializer):
    id = serializers.IntegerField()
    subscription = serializers.IntegerField(source="subscription_id")
    new_plan = serializers.CharField(source="new_plan.slug", default=None)
    extra_tokens = serializers.IntegerField()
    extra_models = serializers.ListField(child=serializers.CharField())
    ends_at = serializers.DateTimeField(allow_null=True)
    state = serializers.CharField()
    justification = serializers.CharField()
    decision_reason = serializers.CharField()
    requested_at = serializers.DateTimeField()


class ChangeRequestInput(serializers.Serializer):
    new_plan = serializers.SlugField(required=False, allow_null=True, default=None)
    extra_tokens = serializers.IntegerField(min_value=0, required=False, default=0)
    extra_models = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list)
    ends_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    justification = serializers.CharField(required=False, default="", max_length=2000)


class ApprovalsOutput(serializers.Serializer):
    subscriptions = SubscriptionOutput(many=True)
    change_requests = ChangeRequestOutput(many=True)
