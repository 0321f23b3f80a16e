"""Page routes of the tenants app, mounted by portal/urls.py."""

from __future__ import annotations

from django.urls import path

from tenants.views import account, tenant

# Under /accounts/ (beside allauth's login, signup, password and e-mail pages).
account_urlpatterns = [
    path("profile/", account.profile, name="account_profile"),
    path("security/", account.security, name="account_security"),
    path("mfa/setup/", account.mfa_setup, name="mfa_setup"),
    path("mfa/login/", account.mfa_login, name="mfa_login"),
    path("mfa/verify/", account.mfa_verify, name="mfa_verify"),
    path("mfa/backup-codes/", account.mfa_backup_codes, name="mfa_backup_codes"),
    path("mfa/disable/", account.mfa_disable, name="mfa_disable"),
    path("tokens/", account.tokens, name="account_tokens"),
    path("tokens/<int:token_id>/revoke/", account.token_revoke, name="account_token_revoke"),
]

# Under /t/<tenant_slug>/ — every view here is guarded by tenants.access.tenant_view.
tenant_urlpatterns = [
    path("", tenant.overview, name="overview"),
    path("members/", tenant.members, name="members"),
    path("members/invite/", tenant.invite, name="invite"),
    path("members/<int:member_id>/role/", tenant.member_role, name="member-role"),
    path("members/<int:member_id>/remove/", tenant.member_remove, name="member-remove"),
    path("invitations/<int:invitation_id>/revoke/", tenant.invitation_revoke, name="invitation-revoke"),
    path("leave/", tenant.leave, name="leave"),
    path("transfer/", tenant.transfer, name="transfer"),
    path("settings/", tenant.settings_view, name="settings"),
    path("audit/", tenant.audit, name="audit"),
    path("audit.csv", tenant.audit_csv, name="audit-csv"),
]

# Top-level pages about the signed-in person.
urlpatterns = [
    path("tenants/new/", account.tenant_create, name="tenant-create"),
    path("invitations/<str:token>/", account.invitation_accept, name="invitation-accept"),
]
