"""Tenants app pages (accounts, members, invitations, audit log) live here."""
