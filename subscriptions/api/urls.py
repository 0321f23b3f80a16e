"""Management API routes of subscriptions, mounted under /api/v1/ by portal/api/urls.py."""

from __future__ import annotations

from django.urls import path

from subscriptions.api import views

_t = "tenants/<slug:tenant_slug>"
_app = f"{_t}/applications/<slug:app_slug>"

urlpatterns = [
    path(f"{_t}/applications", views.ApplicationListApi.as_view(), name="application-list"),
    path(_app, views.ApplicationDetailApi.as_view(), name="application-detail"),
    path(f"{_app}/keys", views.KeyListApi.as_view(), name="key-list"),
    path(f"{_app}/keys/<int:key_id>", views.KeyDetailApi.as_view(), name="key-detail"),
    path(f"{_app}/keys/<int:key_id>/rotate", views.KeyRotateApi.as_view(), name="key-rotate"),
    path(f"{_t}/subscriptions", views.SubscriptionListApi.as_view(), name="subscription-list"),
    path(
        f"{_t}/subscriptions/<int:subscription_id>/change-requests",
        views.ChangeRequestCreateApi.as_view(),
        name="change-request-create",
    ),
    path(f"{_t}/approvals", views.ApprovalsApi.as_view(), name="approvals"),
    path(
        f"{_t}/received-subscriptions/<int:subscription_id>/decision",
        views.SubscriptionDecisionApi.as_view(),
        name="subscription-decision",
    ),
    path(
        f"{_t}/received-subscriptions/<int:subscription_id>/state",
        views.SubscriptionStateApi.as_view(),
        name="subscription-state",
    ),
    path(
        f"{_t}/change-requests/<int:change_id>/decision",
        views.ChangeRequestDecisionApi.as_view(),
        name="change-decision",
    ),
]
