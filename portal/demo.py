"""The demo data of SPEC §5, created idempotently through the apps' services.

Grows with the product: each app's models add their part of the demo here (catalog, plans, keys, policies).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from django.db import transaction

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
    return summary
