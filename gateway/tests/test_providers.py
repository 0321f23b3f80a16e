"""Providers and deployments: credentials encrypted at rest (with key rotation), upstream URLs guarded, prices."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from gateway import services
from gateway.models import Provider
from portal.crypto import DecryptionError, _fernet
from portal.errors import DomainError
from tenants import services as tenant_services
from tenants.models import AuditEvent

pytestmark = pytest.mark.django_db
SECRET = "sk-live-0123456789abcdef"


@pytest.fixture
def tenant():
    owner = tenant_services.user_create(email="owner@acme.test", password="x" * 12)
    return tenant_services.tenant_create(slug="acme", name="Acme", owner=owner)


def _provider(tenant, **kwargs):
    return services.provider_create(
        tenant=tenant,
        name="openai",
        kind="openai",
        actor=tenant_services.SYSTEM,
        credentials={"api_key": SECRET},
        **kwargs,
    )


def test_credentials_are_encrypted_at_rest_and_never_audited(tenant):
    provider = _provider(tenant)

    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names come from introspection
            assert SECRET not in str(cursor.fetchall()), table
    assert services.provider_credentials(Provider.objects.for_tenant(tenant).get(pk=provider.pk)) == {"api_key": SECRET}
    assert AuditEvent.objects.for_tenant(tenant).get(action="provider.created").details["authenticated"] is True


def test_keys_rotate_first_encrypts_all_decrypt(tenant, settings):
    old_key, new_key = settings.GATEHOUSE_ENCRYPTION_KEY, Fernet.generate_key().decode()
    provider = _provider(tenant)

    settings.GATEHOUSE_ENCRYPTION_KEY = f"{new_key},{old_key}"
    assert services.provider_credentials(provider) == {"api_key": SECRET}
    services.provider_set_credentials(
        provider=provider, credentials={"api_key": "sk-new"}, actor=tenant_services.SYSTEM
    )

    settings.GATEHOUSE_ENCRYPTION_KEY = new_key  # the old key is retired: the re-saved secret still reads
    assert services.provider_credentials(provider) == {"api_key": "sk-new"}
    settings.GATEHOUSE_ENCRYPTION_KEY = Fernet.generate_key().decode()
    with pytest.raises(DecryptionError):
        services.provider_credentials(provider)


def test_a_malformed_encryption_key_is_a_clear_configuration_error():
    with pytest.raises(ImproperlyConfigured, match="Fernet keys"):
        _fernet("not-a-key")


@pytest.mark.parametrize(
    "api_base", ["http://127.0.0.1:9100/v1", "http://169.254.169.254/latest", "http://[::1]:8080", "ftp://example.test"]
)
def test_private_upstreams_are_refused_unless_allowed(tenant, settings, api_base):
    settings.GATEHOUSE_ALLOW_PRIVATE_UPSTREAMS = False

    with pytest.raises(DomainError) as refused:
        _provider(tenant, api_base=api_base)

    assert refused.value.code == "upstream_not_allowed"
    assert not Provider.objects.for_tenant(tenant).exists()


def test_private_upstreams_are_accepted_when_allowed(tenant, settings):
    settings.GATEHOUSE_ALLOW_PRIVATE_UPSTREAMS = True

    provider = _provider(tenant, api_base="http://127.0.0.1:9100/v1/")

    assert provider.api_base == "http://127.0.0.1:9100/v1"


def test_deployment_prices_default_to_litellms_offline_price_map(tenant):
    provider = _provider(tenant)

    listed = services.deployment_create(
        provider=provider, name="mini", model="gpt-4o-mini", actor=tenant_services.SYSTEM
    )
    unknown = services.deployment_create(
        provider=provider, name="own", model="our-finetune", actor=tenant_services.SYSTEM
    )
    chosen = services.deployment_create(
        provider=provider,
        name="priced",
        model="gpt-4o-mini",
        actor=tenant_services.SYSTEM,
        input_price_micros_per_mtok=1,
        output_price_micros_per_mtok=2,
    )

    # gpt-4o-mini lists $0.15 / $0.60 per 1M tokens
    assert (listed.input_price_micros_per_mtok, listed.output_price_micros_per_mtok) == (150_000, 600_000)
    assert (unknown.input_price_micros_per_mtok, unknown.output_price_micros_per_mtok) == (0, 0)
    assert (chosen.input_price_micros_per_mtok, chosen.output_price_micros_per_mtok) == (1, 2)
