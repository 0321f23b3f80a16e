"""Roles and what they may do: the one table every check consults.

Permissions are named strings (`<area>.<verb>`), mapped to roles in code, so a reviewer can read who may do
what in one place and a test can walk it. PRIVILEGED permissions additionally need a fresh MFA step-up.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    DEVELOPER = "developer"
    FINANCE = "finance"
    VIEWER = "viewer"

    @property
    def label(self) -> str:
        return self.value.capitalize()


class Perm(StrEnum):
    TENANT_VIEW = "tenant.view"
    TENANT_MANAGE = "tenant.manage"  # name, region, timezone, require-MFA
    TENANT_TRANSFER = "tenant.transfer"  # hand ownership to another member
    MEMBERS_VIEW = "members.view"
    MEMBERS_MANAGE = "members.manage"  # invite, change roles, remove
    AUDIT_VIEW = "audit.view"
    CATALOG_VIEW = "catalog.view"
    CATALOG_PUBLISH = "catalog.publish"
    APPS_MANAGE = "apps.manage"
    KEYS_MANAGE = "keys.manage"
    SUBSCRIPTIONS_REQUEST = "subscriptions.request"
    SUBSCRIPTIONS_APPROVE = "subscriptions.approve"
    POLICIES_MANAGE = "policies.manage"
    PROVIDERS_MANAGE = "providers.manage"  # provider credentials and the deployments they pay for
    ANALYTICS_VIEW_USAGE = "analytics.view_usage"
    ANALYTICS_VIEW_COSTS = "analytics.view_costs"
    ALERTS_MANAGE = "alerts.manage"  # alert rules: who is told what, and where (e-mail, webhooks)


_EVERYONE = {Perm.TENANT_VIEW, Perm.MEMBERS_VIEW, Perm.CATALOG_VIEW, Perm.ANALYTICS_VIEW_USAGE}

ROLE_PERMISSIONS: dict[Role, frozenset[Perm]] = {
    Role.OWNER: frozenset(Perm),
    Role.ADMIN: frozenset(set(Perm) - {Perm.TENANT_TRANSFER}),
    Role.DEVELOPER: frozenset(
        _EVERYONE | {Perm.APPS_MANAGE, Perm.KEYS_MANAGE, Perm.SUBSCRIPTIONS_REQUEST, Perm.CATALOG_PUBLISH}
    ),
    Role.FINANCE: frozenset(_EVERYONE | {Perm.ANALYTICS_VIEW_COSTS, Perm.ALERTS_MANAGE}),
    Role.VIEWER: frozenset(_EVERYONE),
}

# Actions that move money, grant access or change who holds power: a recent OTP verification is required.
PRIVILEGED: frozenset[Perm] = frozenset(
    {
        Perm.TENANT_MANAGE,
        Perm.TENANT_TRANSFER,
        Perm.MEMBERS_MANAGE,
        Perm.KEYS_MANAGE,
        Perm.SUBSCRIPTIONS_APPROVE,
        Perm.POLICIES_MANAGE,
        Perm.PROVIDERS_MANAGE,
    }
)

# Who outranks whom: an inviter may grant only roles at or below their own.
ROLE_RANK: dict[Role, int] = {Role.OWNER: 4, Role.ADMIN: 3, Role.DEVELOPER: 2, Role.FINANCE: 2, Role.VIEWER: 1}


def role_has(role: str, perm: Perm) -> bool:
    return perm in ROLE_PERMISSIONS.get(Role(role), frozenset())


def roles_grantable_by(role: str) -> list[Role]:
    rank = ROLE_RANK[Role(role)]
    return [r for r in Role if ROLE_RANK[r] <= rank]
