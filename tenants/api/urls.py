"""Management API routes of tenants, mounted under /api/v1/ by portal/api/urls.py."""

from __future__ import annotations

from django.urls import path

from tenants.api import views

urlpatterns = [
    path("me", views.MeApi.as_view(), name="me"),
    path("tenants", views.TenantListApi.as_view(), name="tenant-list"),
    path("tenants/<slug:tenant_slug>", views.TenantDetailApi.as_view(), name="tenant-detail"),
    path("tenants/<slug:tenant_slug>/members", views.MemberListApi.as_view(), name="member-list"),
    path("tenants/<slug:tenant_slug>/members/<int:member_id>", views.MemberDetailApi.as_view(), name="member-detail"),
    path("tenants/<slug:tenant_slug>/invitations", views.InvitationListApi.as_view(), name="invitation-list"),
    path(
        "tenants/<slug:tenant_slug>/invitations/<int:invitation_id>",
        views.InvitationDetailApi.as_view(),
        name="invitation-detail",
    ),
    path("tenants/<slug:tenant_slug>/audit-events", views.AuditEventListApi.as_view(), name="audit-event-list"),
]
