"""Tenant page routes of subscriptions and of the publisher's catalog pages, mounted under /t/<tenant_slug>/
(namespace "tenants") by portal/urls.py."""

from __future__ import annotations

from django.urls import path

from gateway import views as publisher
from subscriptions import views

tenant_urlpatterns = [
    path("applications/", views.applications, name="applications"),
    path("applications/<slug:app_slug>/", views.application, name="application"),
    path("applications/<slug:app_slug>/delete/", views.application_delete, name="application-delete"),
    path("applications/<slug:app_slug>/keys/new/", views.key_create, name="key-create"),
    path("applications/<slug:app_slug>/keys/<int:key_id>/", views.key_detail, name="key"),
    path("applications/<slug:app_slug>/keys/<int:key_id>/rotate/", views.key_rotate, name="key-rotate"),
    path("applications/<slug:app_slug>/keys/<int:key_id>/revoke/", views.key_revoke, name="key-revoke"),
    path("subscribe/<slug:publisher_slug>/<slug:api_slug>/", views.subscribe, name="subscribe"),
    path("subscriptions/<int:subscription_id>/change/", views.change_request, name="change-request"),
    path("approvals/", views.approvals, name="approvals"),
    path("approvals/subscriptions/<int:subscription_id>/", views.decide_subscription, name="decide-subscription"),
    path("approvals/changes/<int:change_id>/", views.decide_change, name="decide-change"),
    path("subscribers/", views.subscribers, name="subscribers"),
    path("subscribers/<int:subscription_id>/", views.subscriber_action, name="subscriber-action"),
    # Publisher pages of the catalog (gateway app).
    path("apis/", publisher.apis, name="apis"),
    path("apis/<slug:api_slug>/", publisher.api, name="api"),
    path("apis/<slug:api_slug>/versions/", publisher.version_create, name="version-create"),
    path("apis/<slug:api_slug>/versions/<str:version>/status/", publisher.version_status, name="version-status"),
    path("apis/<slug:api_slug>/plans/", publisher.plan_create, name="plan-create"),
    path("apis/<slug:api_slug>/versions/<str:version>/routes/", publisher.route_set, name="route-set"),
    path("policies/", publisher.policies, name="policies"),
    path("providers/", publisher.providers, name="providers"),
    path("providers/<int:provider_id>/deployments/", publisher.deployment_create, name="deployment-create"),
]
