"""Accounts, tenants, memberships, invitations, tokens and the audit log."""

from tenants.models.accounts import BackupCode, BackupCodeDevice, PersonalAccessToken, User, UserManager
from tenants.models.audit import AppendOnlyError, AuditEvent
from tenants.models.tenancy import REGIONS, Invitation, Membership, Tenant

__all__ = [
    "REGIONS",
    "AppendOnlyError",
    "AuditEvent",
    "BackupCode",
    "BackupCodeDevice",
    "Invitation",
    "Membership",
    "PersonalAccessToken",
    "Tenant",
    "User",
    "UserManager",
]
