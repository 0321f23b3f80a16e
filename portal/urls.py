from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from analytics import urls as analytics_urls
from analytics import views as analytics_views
from portal import views
from subscriptions import urls as subscription_urls
from tenants import urls as tenant_urls
from tenants.views import account

portal_patterns = [
    path("", views.landing, name="landing"),
    path("home/", account.home, name="home"),
    path("catalog/", views.catalog, name="catalog"),
    path("catalog/<slug:publisher_slug>/<slug:api_slug>/", views.catalog_detail, name="catalog-detail"),
]

urlpatterns = [
    path("", include((portal_patterns, "portal"))),
    path("", include((tenant_urls.urlpatterns, "tenants-top"))),
    # Every page of a tenant, one namespace: each view is guarded by tenants.access.tenant_view.
    path(
        "t/<slug:tenant_slug>/",
        include(
            (
                tenant_urls.tenant_urlpatterns
                + subscription_urls.tenant_urlpatterns
                + analytics_urls.tenant_urlpatterns,
                "tenants",
            )
        ),
    ),
    path("accounts/", include(tenant_urls.account_urlpatterns)),
    path("accounts/", include("allauth.urls")),
    path("schemas/policies.json", views.policies_schema, name="policies-schema"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", analytics_views.metrics, name="metrics"),
    path("readyz", views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("portal.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
