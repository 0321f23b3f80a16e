"""Tenant pages of applications, keys, subscriptions and approvals (under /t/<tenant_slug>/).

Consumer side: applications, their keys and subscriptions, subscribing and change requests.
Publisher side: the approvals inbox and the list of subscribers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from gateway import selectors as catalog_selectors
from portal.errors import DomainError
from subscriptions import selectors, services
from subscriptions.forms import (
    ApplicationForm,
    ChangeRequestForm,
    DecisionForm,
    KeyCreateForm,
    RotateForm,
    SubscribeForm,
    SubscriberActionForm,
)
from subscriptions.models import ApiKey, Application, Subscription
from tenants.access import render_tenant_page, tenant_context, tenant_view
from tenants.permissions import Perm
from tenants.scoping import get_for_tenant_or_404
from tenants.services import Actor


def _application(request: HttpRequest, app_slug: str) -> Application:
    return get_for_tenant_or_404(Application, tenant=tenant_context(request).tenant, slug=app_slug)


def _key(request: HttpRequest, app_slug: str, key_id: int) -> ApiKey:
    key = _application(request, app_slug).keys.filter(pk=key_id).first()
    if key is None:
        raise Http404("No such key.")
    return key


# --- applications --------------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@tenant_view(Perm.TENANT_VIEW, post=Perm.APPS_MANAGE)
def applications(request: HttpRequest) -> HttpResponse:
    ctx = tenant_context(request)
    form = ApplicationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            app = services.application_create(tenant=ctx.tenant, actor=Actor.from_request(request), **form.cleaned_data)
        except DomainError as error:
            form.add_error("slug", error.message)
        else:
            messages.success(request, f"{app.name} is ready. Subscribe it to an API from the catalog.")
            return redirect("tenants:application", tenant_slug=ctx.tenant.slug, app_slug=app.slug)
    return render_tenant_page(
        request,
        "subscriptions/applications.html",
        {"applications": selectors.applications_of(tenant=ctx.tenant), "form": form},
        status=400 if form.errors else 200,
    )


@require_GET
@tenant_view(Perm.TENANT_VIEW)
def application(request: HttpRequest, app_slug: str) -> HttpResponse:
    app = _application(request, app_slug)
    return render_tenant_page(
        request,
        "subscriptions/application.html",
        {
            "app": app,
            "subscriptions": [
                (subscription, selectors.subscription_policy(subscription))
                for subscription in app.subscriptions.select_related(
                    "api__tenant", "plan", "application__tenant"
                ).order_by("-requested_at")
            ],
            "keys": app.keys.order_by("-created_at"),
            "now": timezone.now(),
        },
    )


@require_POST
@tenant_view(Perm.APPS_MANAGE)
def application_delete(request: HttpRequest, app_slug: str) -> HttpResponse:
    app = _application(request, app_slug)
    services.application_delete(application=app, actor=Actor.from_request(request))
    messages.success(request, f"{app.name} is deleted; its keys no longer work.")
    return redirect("tenants:applications", tenant_slug=tenant_context(request).tenant.slug)


# --- keys ----------------------------------------------------------------------------------------------------


def _show_key_once(request: HttpRequest, app: Application, key: ApiKey, full: str, headline: str) -> HttpResponse:
    """The only response that ever carries the full key; it is not stored anywhere, not even in the session."""
    response = render_tenant_page(
        request, "subscriptions/key_created.html", {"app": app, "key": key, "full_key": full, "headline": headline}
    )
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["GET", "POST"])
@tenant_view(Perm.KEYS_MANAGE)
def key_create(request: HttpRequest, app_slug: str) -> HttpResponse:
    app = _application(request, app_slug)
    apis = [
        (str(s.api_id), s.api.name)
        for s in app.subscriptions.select_related("api").filter(state__in=Subscription.LIVE_STATES)
    ]
    form = KeyCreateForm(request.POST or None, apis=apis)
    if request.method == "POST" and form.is_valid():
        try:
            key, full = services.api_key_create(
                application=app,
                name=form.cleaned_data["name"],
                scopes=[int(s) for s in form.cleaned_data["scopes"]],
                ip_allowlist=form.cleaned_data["ip_allowlist"],
                expires_at=form.expires_at(),
                actor=Actor.from_request(request),
            )
        except DomainError as error:
            form.add_error(None, error.message)
        else:
            return _show_key_once(request, app, key, full, "Your new API key")
    return render_tenant_page(
        request, "subscriptions/key_form.html", {"app": app, "form": form}, status=400 if form.errors else 200
    )


@require_GET
@tenant_view(Perm.TENANT_VIEW)
def key_detail(request: HttpRequest, app_slug: str, key_id: int) -> HttpResponse:
    """ "Why was I limited?": every limit and quota a key's calls count against, who set it, and how much is used."""
    key = _key(request, app_slug, key_id)
    return render_tenant_page(
        request,
        "subscriptions/key.html",
        {"app": key.application, "key": key, "grants": selectors.key_limits(key), "now": timezone.now()},
    )


@require_POST
@tenant_view(Perm.KEYS_MANAGE)
def key_rotate(request: HttpRequest, app_slug: str, key_id: int) -> HttpResponse:
    key = _key(request, app_slug, key_id)
    form = RotateForm(request.POST)
    grace = timedelta(hours=form.cleaned_data["grace_hours"]) if form.is_valid() else timedelta(hours=24)
    try:
        new, full = services.api_key_rotate(key=key, actor=Actor.from_request(request), grace=grace)
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("tenants:application", tenant_slug=tenant_context(request).tenant.slug, app_slug=app_slug)
    return _show_key_once(request, key.application, new, full, f"The replacement of “{key.name}”")


@require_POST
@tenant_view(Perm.KEYS_MANAGE)
def key_revoke(request: HttpRequest, app_slug: str, key_id: int) -> HttpResponse:
    key = _key(request, app_slug, key_id)
    services.api_key_revoke(key=key, actor=Actor.from_request(request))
    messages.success(request, f"Key “{key.name}” (gh_{key.public_id}_…) is revoked and stops working now.")
    return redirect("tenants:application", tenant_slug=tenant_context(request).tenant.slug, app_slug=app_slug)


# --- subscribing ---------------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@tenant_view(Perm.SUBSCRIPTIONS_REQUEST)
def subscribe(request: HttpRequest, publisher_slug: str, api_slug: str) -> HttpResponse:
    ctx = tenant_context(request)
    api = catalog_selectors.api_for_viewer(user=request.user, publisher_slug=publisher_slug, api_slug=api_slug)  # type: ignore[arg-type]
    if api is None:
        raise Http404("No such API.")
    apps = list(selectors.applications_of(tenant=ctx.tenant))
    plans = list(catalog_selectors.active_plans(api=api))
    form = SubscribeForm(
        request.POST or None,
        applications=[(a.slug, a.name) for a in apps],
        plans=[(p.slug, f"{p.name}{' (needs approval)' if p.needs_approval else ''}") for p in plans],
    )
    if request.method == "POST" and form.is_valid():
        app = next(a for a in apps if a.slug == form.cleaned_data["application"])
        plan = next(p for p in plans if p.slug == form.cleaned_data["plan"])
        try:
            subscription = services.subscription_request(
                application=app,
                api=api,
                plan=plan,
                justification=form.cleaned_data["justification"],
                actor=Actor.from_request(request),
            )
        except DomainError as error:
            form.add_error(None, error.message)
        else:
            if subscription.state == Subscription.State.APPROVED:
                messages.success(request, f"{app.name} can use {api.name} now. Create a key to call it.")
            else:
                messages.success(request, f"Requested. {api.tenant.name} will review it; you will get an e-mail.")
            return redirect("tenants:application", tenant_slug=ctx.tenant.slug, app_slug=app.slug)
    return render_tenant_page(
        request,
        "subscriptions/subscribe.html",
        {"api": api, "form": form, "has_apps": bool(apps)},
        status=400 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
@tenant_view(Perm.SUBSCRIPTIONS_REQUEST)
def change_request(request: HttpRequest, subscription_id: int) -> HttpResponse:
    ctx = tenant_context(request)
    subscription = selectors.subscription_of_consumer_or_404(tenant=ctx.tenant, pk=subscription_id)
    plans = [p for p in catalog_selectors.active_plans(api=subscription.api) if p.pk != subscription.plan_id]
    form = ChangeRequestForm(request.POST or None, plans=[(p.slug, p.name) for p in plans])
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        until = data["until"]
        ends_at = timezone.make_aware(datetime.combine(until, time.max)) if until else None
        try:
            services.change_request_create(
                subscription=subscription,
                actor=Actor.from_request(request),
                new_plan=next((p for p in plans if p.slug == data["new_plan"]), None),
                extra_tokens=data["extra_tokens"] or 0,
                extra_models=[m.strip() for m in data["extra_models"].split(",") if m.strip()],
                ends_at=ends_at,
                justification=data["justification"],
            )
        except DomainError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, "Change requested. You will get an e-mail when it is decided.")
            return redirect("tenants:application", tenant_slug=ctx.tenant.slug, app_slug=subscription.application.slug)
    return render_tenant_page(
        request,
        "subscriptions/change_request.html",
        {"subscription": subscription, "form": form},
        status=400 if form.errors else 200,
    )


# --- publisher side ------------------------------------------------------------------------------------------


@require_GET
@tenant_view(Perm.TENANT_VIEW)
def approvals(request: HttpRequest) -> HttpResponse:
    ctx = tenant_context(request)
    return render_tenant_page(
        request,
        "subscriptions/approvals.html",
        {
            "pending": selectors.subscriptions_pending_for_publisher(tenant=ctx.tenant),
            "changes": selectors.change_requests_pending_for_publisher(tenant=ctx.tenant),
        },
    )


def _decide(request: HttpRequest, label: str, decide: Callable[..., object], **target: object) -> HttpResponse:
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose approve or reject.")
    else:
        try:
            decide(actor=Actor.from_request(request), **form.cleaned_data, **target)
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"{label}: {form.cleaned_data['decision']}d.")
    return redirect("tenants:approvals", tenant_slug=tenant_context(request).tenant.slug)


@require_POST
@tenant_view(Perm.SUBSCRIPTIONS_APPROVE)
def decide_subscription(request: HttpRequest, subscription_id: int) -> HttpResponse:
    subscription = selectors.subscription_of_publisher_or_404(tenant=tenant_context(request).tenant, pk=subscription_id)
    label = f"{subscription.application} → {subscription.api.name}"
    return _decide(request, label, services.subscription_decide, subscription=subscription)


@require_POST
@tenant_view(Perm.SUBSCRIPTIONS_APPROVE)
def decide_change(request: HttpRequest, change_id: int) -> HttpResponse:
    change = selectors.change_request_of_publisher_or_404(tenant=tenant_context(request).tenant, pk=change_id)
    return _decide(request, "Change request", services.change_request_decide, change_request=change)


@require_GET
@tenant_view(Perm.TENANT_VIEW)
def subscribers(request: HttpRequest) -> HttpResponse:
    ctx = tenant_context(request)
    received = (
        Subscription.objects.filter(publisher=ctx.tenant)
        .exclude(state=Subscription.State.PENDING)
        .select_related("application__tenant", "api", "plan")
        .order_by("api__name", "application__tenant__name")
    )
    return render_tenant_page(request, "subscriptions/subscribers.html", {"subscriptions": received})


@require_POST
@tenant_view(Perm.SUBSCRIPTIONS_APPROVE)
def subscriber_action(request: HttpRequest, subscription_id: int) -> HttpResponse:
    ctx = tenant_context(request)
    subscription = selectors.subscription_of_publisher_or_404(tenant=ctx.tenant, pk=subscription_id)
    form = SubscriberActionForm(request.POST)
    if form.is_valid():
        action = {
            "suspend": services.subscription_suspend,
            "resume": services.subscription_resume,
            "revoke": services.subscription_revoke,
        }[form.cleaned_data["action"]]
        try:
            action(subscription=subscription, actor=Actor.from_request(request), reason=form.cleaned_data["reason"])
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Subscription of {subscription.application}: {form.cleaned_data['action']}d.")
    return redirect("tenants:subscribers", tenant_slug=ctx.tenant.slug)
