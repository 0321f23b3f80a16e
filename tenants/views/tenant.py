"""Tenant pages under /t/<tenant_slug>/: overview, members, invitations, settings, ownership, audit log.

Every view is wrapped in ``tenant_view`` (tenants/access.py), which resolves the tenant once, checks the role's
permission and, for privileged actions, the MFA step-up. Views stay thin: forms validate, services write.
"""

from __future__ import annotations

from datetime import datetime, time

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.csv_export import csv_response
from portal.errors import DomainError
from tenants import selectors, services
from tenants.access import render_tenant_page, tenant_context, tenant_view
from tenants.forms import InvitationForm, RoleChoiceForm, TenantSettingsForm, TransferOwnershipForm
from tenants.models import AuditEvent, Invitation, Membership
from tenants.permissions import Perm
from tenants.scoping import get_for_tenant_or_404
from tenants.services import Actor


@require_GET
@tenant_view(Perm.TENANT_VIEW)
def overview(request: HttpRequest) -> HttpResponse:
    ctx = tenant_context(request)
    return render_tenant_page(
        request,
        "tenants/overview.html",
        {
            "member_count": selectors.members_of_tenant(tenant=ctx.tenant).count(),
            "pending_count": selectors.pending_invitations(tenant=ctx.tenant).count(),
            "recent_events": selectors.audit_events(tenant=ctx.tenant)[:5] if ctx.can(Perm.AUDIT_VIEW) else [],
        },
    )


@require_GET
@tenant_view(Perm.MEMBERS_VIEW)
def members(request: HttpRequest) -> HttpResponse:
    ctx = tenant_context(request)
    return render_tenant_page(
        request,
        "tenants/members.html",
        {
            "members": selectors.members_of_tenant(tenant=ctx.tenant),
            "invitations": selectors.pending_invitations(tenant=ctx.tenant) if ctx.can(Perm.MEMBERS_MANAGE) else [],
            "role_form": RoleChoiceForm(grantor_role=ctx.membership.role),
        },
    )


@require_http_methods(["GET", "POST"])
@tenant_view(Perm.MEMBERS_MANAGE)
def invite(request: HttpRequest) -> HttpResponse:
    ctx = tenant_context(request)
    form = InvitationForm(request.POST or None, grantor_role=ctx.membership.role)
    if request.method == "POST" and form.is_valid():
        try:
            invitation, _ = services.invitation_create(
                tenant=ctx.tenant,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                actor=Actor.from_request(request),
                by=ctx.membership,
                accept_url_base=request.build_absolute_uri("/"),
            )
        except DomainError as error:
            form.add_error("email", error.message)
        else:
            messages.success(request, f"Invitation sent to {invitation.email} (valid for 7 days).")
            return redirect("tenants:members", tenant_slug=ctx.tenant.slug)
    return render_tenant_page(request, "tenants/invite.html", {"form": form}, status=400 if form.errors else 200)


@require_POST
@tenant_view(Perm.MEMBERS_MANAGE)
def invitation_revoke(request: HttpRequest, invitation_id: int) -> HttpResponse:
    ctx = tenant_context(request)
    invitation = get_for_tenant_or_404(Invitation, tenant=ctx.tenant, pk=invitation_id)
    try:
        services.invitation_revoke(invitation=invitation, actor=Actor.from_request(request))
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"The invitation of {invitation.email} is revoked.")
    return redirect("tenants:members", tenant_slug=ctx.tenant.slug)


@require_POST
@tenant_view(Perm.MEMBERS_MANAGE)
def member_role(request: HttpRequest, member_id: int) -> HttpResponse:
    ctx = tenant_context(request)
    membership = get_for_tenant_or_404(Membership, tenant=ctx.tenant, pk=member_id)
    form = RoleChoiceForm(request.POST, grantor_role=ctx.membership.role)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles offered.")
    else:
        try:
            services.membership_change_role(
                membership=membership,
                role=form.cleaned_data["role"],
                actor=Actor.from_request(request),
                by=ctx.membership,
            )
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"{membership.user.email} is now {membership.role}.")
    return redirect("tenants:members", tenant_slug=ctx.tenant.slug)


@require_POST
@tenant_view(Perm.MEMBERS_MANAGE)
def member_remove(request: HttpRequest, member_id: int) -> HttpResponse:
    ctx = tenant_context(request)
    membership = get_for_tenant_or_404(Membership, tenant=ctx.tenant, pk=member_id)
    try:
        services.membership_remove(membership=membership, actor=Actor.from_request(request), by=ctx.membership)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{membership.user.email} was removed from {ctx.tenant.name}.")
        if membership.pk == ctx.membership.pk:
            return redirect("portal:home")
    return redirect("tenants:members", tenant_slug=ctx.tenant.slug)


@require_POST
@tenant_view(Perm.TENANT_VIEW)
def leave(request: HttpRequest) -> HttpResponse:
    ctx = tenant_context(request)
    try:
        services.membership_remove(membership=ctx.membership, actor=Actor.from_request(request), by=None)
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("tenants:overview", tenant_slug=ctx.tenant.slug)
    messages.success(request, f"You left {ctx.tenant.name}.")
    return redirect("portal:home")


@require_http_methods(["GET", "POST"])
@tenant_view(Perm.TENANT_TRANSFER)
def transfer(request: HttpRequest) -> HttpResponse:
    ctx = tenant_context(request)
    others = [m for m in selectors.members_of_tenant(tenant=ctx.tenant) if m.pk != ctx.membership.pk]
    form = TransferOwnershipForm(
        request.POST or None, candidates=[(m.pk, f"{m.user.email} ({m.role})") for m in others]
    )
    if request.method == "POST" and form.is_valid():
        to = get_for_tenant_or_404(Membership, tenant=ctx.tenant, pk=form.cleaned_data["membership"])
        try:
            services.tenant_transfer_ownership(
                tenant=ctx.tenant, to=to, actor=Actor.from_request(request), by=ctx.membership
            )
        except DomainError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"{to.user.email} is now an owner; you are an admin.")
            return redirect("tenants:members", tenant_slug=ctx.tenant.slug)
    return render_tenant_page(request, "tenants/transfer.html", {"form": form, "has_candidates": bool(others)})


@require_http_methods(["GET", "POST"])
@tenant_view(Perm.TENANT_MANAGE)
def settings_view(request: HttpRequest) -> HttpResponse:
    ctx = tenant_context(request)
    tenant = ctx.tenant
    initial = {
        "name": tenant.name,
        "require_mfa": tenant.require_mfa,
        "default_region": tenant.default_region,
        "timezone": tenant.timezone,
        "markup_percent": tenant.markup_basis_points / 100,
    }
    form = TenantSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        services.tenant_update_settings(
            tenant=tenant,
            actor=Actor.from_request(request),
            name=data["name"],
            require_mfa=data["require_mfa"],
            default_region=data["default_region"],
            timezone_name=data["timezone"],
            markup_basis_points=round((data["markup_percent"] or 0) * 100),
        )
        messages.success(request, "Settings saved.")
        return redirect("tenants:settings", tenant_slug=tenant.slug)
    return render_tenant_page(request, "tenants/settings.html", {"form": form})


def _filtered_events(request: HttpRequest) -> tuple[QuerySet[AuditEvent], dict[str, str]]:
    ctx = tenant_context(request)
    tz = timezone.get_current_timezone()
    filters = {key: request.GET.get(key, "").strip() for key in ("action", "actor", "since", "until")}
    since, until = parse_date(filters["since"] or ""), parse_date(filters["until"] or "")
    events = selectors.audit_events(
        tenant=ctx.tenant,
        action=filters["action"],
        actor=filters["actor"],
        since=timezone.make_aware(datetime.combine(since, time.min), tz) if since else None,
        until=timezone.make_aware(datetime.combine(until, time.max), tz) if until else None,
    )
    return events, filters


@require_GET
@tenant_view(Perm.AUDIT_VIEW)
def audit(request: HttpRequest) -> HttpResponse:
    ctx = tenant_context(request)
    events, filters = _filtered_events(request)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    query = "&".join(f"{k}={v}" for k, v in filters.items() if v)
    template = "tenants/_audit_rows.html" if request.htmx else "tenants/audit.html"  # type: ignore[attr-defined]
    return render_tenant_page(
        request,
        template,
        {
            "page": page,
            "filters": filters,
            "query": query,
            "actions": selectors.audit_actions(tenant=ctx.tenant),
            "csv_url": f"{reverse('tenants:audit-csv', kwargs={'tenant_slug': ctx.tenant.slug})}?{query}",
        },
    )


@require_GET
@tenant_view(Perm.AUDIT_VIEW)
def audit_csv(request: HttpRequest) -> StreamingHttpResponse:
    ctx = tenant_context(request)
    events, _ = _filtered_events(request)
    columns = ["created_at", "actor_email", "action", "target_type", "target_id", "ip", "user_agent", "details"]
    rows = (
        [event.created_at.isoformat(), event.actor_email, event.action, event.target_type, event.target_id,
         event.ip or "", event.user_agent, event.details]
        for event in events.iterator()
    )  # fmt: skip
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    return csv_response(f"{ctx.tenant.slug}-audit-{stamp}.csv", columns, rows)
