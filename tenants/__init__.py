"""Accounts, tenants, memberships and roles, invitations and the audit log."""
