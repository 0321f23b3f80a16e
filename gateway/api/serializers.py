from __future__ import annotations

from typing import Any

from rest_framework import serializers

from gateway.models import AiApi, ApiVersion, Plan


class PlanOutput(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    description = serializers.CharField()
    requests_per_minute = serializers.IntegerField(allow_null=True)
    tokens_per_minute = serializers.IntegerField(allow_null=True)
    quota_period = serializers.CharField()
    token_quota = serializers.IntegerField(allow_null=True)
    cost_quota_micros = serializers.IntegerField(allow_null=True, help_text="micro-USD per period")
    allowed_models = serializers.ListField(child=serializers.CharField())
    needs_approval = serializers.BooleanField()
    is_active = serializers.BooleanField()


class PlanInput(serializers.Serializer):
    slug = serializers.SlugField(max_length=50)
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=300, required=False, default="")
    requests_per_minute = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    tokens_per_minute = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    quota_period = serializers.ChoiceField(choices=Plan.Period.choices, required=False, default=Plan.Period.MONTH)
    token_quota = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    cost_quota_micros = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    allowed_models = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list)
    requires_approval = serializers.BooleanField(required=False, allow_null=True, default=None)


class VersionOutput(serializers.Serializer):
    version = serializers.CharField()
    status = serializers.CharField()
    model_alias = serializers.CharField()
    prompt_template = serializers.CharField()
    variables_schema = serializers.JSONField()
    sunset_at = serializers.DateTimeField(allow_null=True)
    published_at = serializers.DateTimeField(allow_null=True)


class VersionInput(serializers.Serializer):
    version = serializers.RegexField(r"^v[0-9]{1,3}(\.[0-9]{1,3})?$", max_length=20)
    model_alias = serializers.CharField(max_length=100, required=False, default="")
    prompt_template = serializers.CharField(required=False, default="")
    variables_schema = serializers.JSONField(required=False, default=dict)


class VersionStatusInput(serializers.Serializer):
    status = serializers.ChoiceField(choices=ApiVersion.Status.choices)
    sunset_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class ApiOutput(serializers.Serializer):
    publisher = serializers.CharField(source="tenant.slug")
    slug = serializers.SlugField()
    name = serializers.CharField()
    kind = serializers.CharField()
    summary = serializers.CharField()
    description = serializers.CharField(help_text="Markdown")
    tags = serializers.ListField(child=serializers.CharField())
    visibility = serializers.CharField()
    requires_approval = serializers.BooleanField()


class ApiInput(serializers.Serializer):
    slug = serializers.SlugField(max_length=50)
    name = serializers.CharField(max_length=120)
    kind = serializers.ChoiceField(choices=AiApi.Kind.choices)
    summary = serializers.CharField(max_length=300, required=False, default="")
    description = serializers.CharField(required=False, default="")
    tags = serializers.ListField(child=serializers.CharField(max_length=30), required=False, default=list)
    visibility = serializers.ChoiceField(choices=AiApi.Visibility.choices, required=False, default="public")
    requires_approval = serializers.BooleanField(required=False, default=True)


class ApiUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    summary = serializers.CharField(max_length=300, required=False)
    description = serializers.CharField(required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=30), required=False)
    visibility = serializers.ChoiceField(choices=AiApi.Visibility.choices, required=False)
    requires_approval = serializers.BooleanField(required=False)


class CatalogEntryOutput(ApiOutput):
    versions = VersionOutput(many=True)
    plans = PlanOutput(many=True)


class PolicyDocumentInput(serializers.Serializer):
    """A policy document (gateway/policy_documents.py) as JSON in ``document`` or as YAML text in ``yaml``."""

    document = serializers.JSONField(required=False, help_text="The document as JSON (schema: /schemas/policies.json).")
    yaml = serializers.CharField(required=False, trim_whitespace=False, help_text="Or the document as YAML text.")
    dry_run = serializers.BooleanField(required=False, default=False, help_text="Only say what would change.")
    note = serializers.CharField(required=False, default="", max_length=200, allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("document" in attrs) == ("yaml" in attrs):
            raise serializers.ValidationError("Send the document either as `document` (JSON) or as `yaml` (text).")
        return attrs


class RollbackInput(serializers.Serializer):
    dry_run = serializers.BooleanField(required=False, default=False)


class PolicyDocumentOutput(serializers.Serializer):
    version = serializers.IntegerField(allow_null=True, help_text="The latest applied version, if any.")
    document = serializers.JSONField()
    yaml = serializers.CharField()


class PolicyChangeOutput(serializers.Serializer):
    dry_run = serializers.BooleanField()
    changes = serializers.ListField(child=serializers.CharField(), help_text="+ added, - removed, ~ changed")
    version = serializers.IntegerField(allow_null=True, help_text="The version made (none for a dry run or no change).")


class PolicyVersionOutput(serializers.Serializer):
    number = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    created_by = serializers.EmailField(source="created_by.email", allow_null=True, default=None)
    note = serializers.CharField()
    changes = serializers.ListField(child=serializers.CharField())
    document = serializers.JSONField()
