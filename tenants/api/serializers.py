from __future__ import annotations

from rest_framework import serializers

from tenants.forms import RESERVED_SLUGS, _timezones
from tenants.models import REGIONS
from tenants.permissions import Role

ROLE_CHOICES = [r.value for r in Role]


class MembershipOutput(serializers.Serializer):
    tenant = serializers.CharField(source="tenant.slug")
    tenant_name = serializers.CharField(source="tenant.name")
    role = serializers.CharField()


class MeOutput(serializers.Serializer):
    email = serializers.EmailField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    has_mfa = serializers.BooleanField()
    memberships = MembershipOutput(many=True)


class TenantOutput(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    require_mfa = serializers.BooleanField()
    default_region = serializers.CharField()
    timezone = serializers.CharField()
    created_at = serializers.DateTimeField()


class TenantCreateInput(serializers.Serializer):
    slug = serializers.RegexField(r"^[a-z0-9](?:[a-z0-9-]{1,48}[a-z0-9])$", max_length=50)
    name = serializers.CharField(max_length=200)

    def validate_slug(self, value: str) -> str:
        if value in RESERVED_SLUGS:
            raise serializers.ValidationError("This address is reserved; choose another.")
        return value


class TenantUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    require_mfa = serializers.BooleanField(required=False)
    default_region = serializers.ChoiceField(choices=REGIONS, required=False)
    timezone = serializers.ChoiceField(choices=_timezones(), required=False)


class MemberOutput(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField(source="user.email")
    name = serializers.CharField(source="user.get_full_name")
    role = serializers.CharField()
    created_at = serializers.DateTimeField()


class MemberUpdateInput(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLE_CHOICES)


class InvitationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    role = serializers.CharField()
    state = serializers.CharField()
    invited_by = serializers.EmailField(source="invited_by.email", default=None)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


class InvitationCreateInput(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=ROLE_CHOICES)


class AuditEventOutput(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    actor_email = serializers.CharField()
    action = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    ip = serializers.IPAddressField(allow_null=True)
    user_agent = serializers.CharField()
    details = serializers.JSONField()


class AuditEventFilter(serializers.Serializer):
    action = serializers.CharField(required=False, help_text="Action prefix, e.g. `member.`")
    actor = serializers.CharField(required=False, help_text="Part of the actor's e-mail")
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
