"""Writes of the tenants app. Views, API views, commands and tasks call these; nothing else writes these models.

Every privileged action records an AuditEvent through ``audit_record`` in the same transaction, so an action
and its audit entry commit or roll back together.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, models, transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.errors import DomainError
from tenants.mfa import backup_code_digest
from tenants.models import (
    AuditEvent,
    BackupCode,
    BackupCodeDevice,
    Invitation,
    Membership,
    PersonalAccessToken,
    Tenant,
    User,
)
from tenants.permissions import ROLE_RANK, Role

INVITATION_LIFETIME = timedelta(days=7)
BACKUP_CODE_COUNT = 10
_BASE62 = string.ascii_letters + string.digits
_SECRET_KEYS = re.compile(r"pass|secret|token|key|code|otp|digest|credential", re.IGNORECASE)


# --- who is acting -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who performs an action and from where; recorded in the audit log."""

    user: User | None
    ip: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest) -> Actor:
        user = request.user if request.user.is_authenticated else None
        return cls(
            user=user,
            ip=request.META.get("REMOTE_ADDR") or None,
            user_agent=request.headers.get("user-agent", "")[:300],
        )


SYSTEM = Actor(user=None)


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "[redacted]" if _SECRET_KEYS.search(str(k)) else _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def audit_record(
    *,
    actor: Actor,
    action: str,
    tenant: Tenant | None = None,
    target: models.Model | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the audit log. Keys that look like credentials are redacted from ``details``."""
    return AuditEvent.all_tenants.create(
        tenant=tenant,
        actor=actor.user,
        actor_email=actor.user.email if actor.user else "",
        action=action,
        target_type=target._meta.model_name if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        ip=actor.ip,
        user_agent=actor.user_agent,
        details=_redact(details or {}),
    )


def _random(length: int, alphabet: str = _BASE62) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# --- users -------------------------------------------------------------------------------------------------


@transaction.atomic
def user_create(
    *, email: str, password: str, email_verified: bool = False, is_staff: bool = False, is_superuser: bool = False
) -> User:
    """A user created outside sign-up (demo, operators, tests). Sign-up itself goes through allauth."""
    user = User.objects.create_user(email=email, password=password, is_staff=is_staff, is_superuser=is_superuser)
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=email_verified)
    return user


@transaction.atomic
def user_set_password(*, user: User, password: str) -> User:
    user.set_password(password)
    user.save(update_fields=["password"])
    return user


@transaction.atomic
def user_update_profile(*, user: User, first_name: str, last_name: str, actor: Actor) -> User:
    user.first_name, user.last_name = first_name.strip(), last_name.strip()
    user.save(update_fields=["first_name", "last_name"])
    audit_record(actor=actor, action="account.profile_updated", target=user)
    return user


# --- tenants and memberships -------------------------------------------------------------------------------


@transaction.atomic
def tenant_create(*, slug: str, name: str, owner: User, actor: Actor = SYSTEM) -> Tenant:
    """A new tenant always starts with its creator as owner (a tenant never has zero owners)."""
    try:
        with transaction.atomic():
            tenant = Tenant.objects.create(slug=slug, name=name)
    except IntegrityError:
        raise DomainError(f"The address /t/{slug}/ is taken; choose another.", code="slug_taken") from None
    membership = Membership.all_tenants.create(tenant=tenant, user=owner, role=Role.OWNER)
    audit_record(actor=actor, action="tenant.created", tenant=tenant, target=tenant, details={"slug": slug})
    audit_record(actor=actor, action="member.added", tenant=tenant, target=membership, details={"role": "owner"})
    return tenant


@transaction.atomic
def tenant_update_settings(
    *,
    tenant: Tenant,
    actor: Actor,
    name: str,
    require_mfa: bool,
    default_region: str,
    timezone_name: str,
    markup_basis_points: int | None = None,
) -> Tenant:
    before = {
        "name": tenant.name,
        "require_mfa": tenant.require_mfa,
        "default_region": tenant.default_region,
        "timezone": tenant.timezone,
        "markup_basis_points": tenant.markup_basis_points,
    }
    after = {"name": name, "require_mfa": require_mfa, "default_region": default_region, "timezone": timezone_name}
    markup = tenant.markup_basis_points if markup_basis_points is None else markup_basis_points
    after["markup_basis_points"] = markup
    changed = {field: {"from": before[field], "to": value} for field, value in after.items() if before[field] != value}
    if not changed:
        return tenant
    tenant.name, tenant.require_mfa = name, require_mfa
    tenant.default_region, tenant.timezone = default_region, timezone_name
    tenant.markup_basis_points = markup
    tenant.full_clean()
    tenant.save()
    audit_record(actor=actor, action="tenant.settings_changed", tenant=tenant, target=tenant, details=changed)
    return tenant


def _lock_tenant(tenant: Tenant) -> None:
    """Serialize changes to a tenant's memberships (the last-owner rule must hold under concurrency)."""
    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()


def _owner_count(tenant: Tenant) -> int:
    return Membership.objects.for_tenant(tenant).filter(role=Role.OWNER).count()


def _outranks_or_equals(actor: Membership, role: str) -> bool:
    return ROLE_RANK[Role(actor.role)] >= ROLE_RANK[Role(role)]


@transaction.atomic
def membership_create(*, tenant: Tenant, user: User, role: Role | str, actor: Actor = SYSTEM) -> Membership:
    _lock_tenant(tenant)
    if Membership.objects.for_tenant(tenant).filter(user=user).exists():
        raise DomainError(f"{user.email} is already a member of {tenant.name}.", code="already_member")
    membership = Membership.all_tenants.create(tenant=tenant, user=user, role=Role(role))
    audit_record(actor=actor, action="member.added", tenant=tenant, target=membership, details={"role": str(role)})
    return membership


@transaction.atomic
def membership_change_role(*, membership: Membership, role: Role | str, actor: Actor, by: Membership) -> Membership:
    """Change a member's role. Nobody grants a role above their own or changes someone who outranks them, and
    the last owner cannot be demoted."""
    role = Role(role)
    _lock_tenant(membership.tenant)
    membership.refresh_from_db()
    if not _outranks_or_equals(by, role) or not _outranks_or_equals(by, membership.role):
        raise DomainError("You can only assign roles up to your own, to members who do not outrank you.", status=403)
    if membership.role == role:
        return membership
    if membership.role == Role.OWNER and _owner_count(membership.tenant) == 1:
        raise DomainError("A tenant needs at least one owner: transfer ownership first.", code="last_owner")
    previous = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        actor=actor,
        action="member.role_changed",
        tenant=membership.tenant,
        target=membership,
        details={"user": membership.user.email, "from": previous, "to": role.value},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: Actor, by: Membership | None) -> None:
    """Remove a member (``by`` is None when members leave on their own). The last owner cannot go."""
    _lock_tenant(membership.tenant)
    membership.refresh_from_db()
    if by is not None and by.pk != membership.pk and not _outranks_or_equals(by, membership.role):
        raise DomainError("You cannot remove a member who outranks you.", status=403)
    if membership.role == Role.OWNER and _owner_count(membership.tenant) == 1:
        raise DomainError("A tenant needs at least one owner: transfer ownership first.", code="last_owner")
    leaving = by is None or by.pk == membership.pk
    audit_record(
        actor=actor,
        action="member.left" if leaving else "member.removed",
        tenant=membership.tenant,
        target=membership,
        details={"user": membership.user.email, "role": membership.role},
    )
    # Tokens acting within this tenant die with the membership.
    PersonalAccessToken.objects.filter(user=membership.user, tenant=membership.tenant, revoked_at=None).update(
        revoked_at=timezone.now()
    )
    membership.delete()


@transaction.atomic
def tenant_transfer_ownership(*, tenant: Tenant, to: Membership, actor: Actor, by: Membership) -> None:
    """Make ``to`` an owner and step ``by`` down to admin."""
    _lock_tenant(tenant)
    by.refresh_from_db()
    if by.role != Role.OWNER:
        raise DomainError("Only an owner can transfer ownership.", status=403)
    if to.pk == by.pk:
        raise DomainError("Choose another member to hand ownership to.")
    to.role, by.role = Role.OWNER, Role.ADMIN
    to.save(update_fields=["role"])
    by.save(update_fields=["role"])
    audit_record(
        actor=actor,
        action="tenant.ownership_transferred",
        tenant=tenant,
        target=to,
        details={"from": by.user.email, "to": to.user.email},
    )


# --- invitations -------------------------------------------------------------------------------------------


@transaction.atomic
def invitation_create(
    *, tenant: Tenant, email: str, role: Role | str, actor: Actor, by: Membership, accept_url_base: str
) -> tuple[Invitation, str]:
    """Invite ``email`` with ``role`` (at most the inviter's). Returns the invitation and its one-time token,
    which is e-mailed after commit and never stored. A newer invitation replaces a pending older one."""
    role, email = Role(role), email.strip().lower()
    if not _outranks_or_equals(by, role):
        raise DomainError("You can only invite with roles up to your own.", status=403)
    if Membership.objects.for_tenant(tenant).filter(user__email__iexact=email).exists():
        raise DomainError(f"{email} is already a member.", code="already_member")
    now = timezone.now()
    Invitation.objects.for_tenant(tenant).filter(
        email=email, accepted_at=None, revoked_at=None, expires_at__gt=now
    ).update(revoked_at=now)
    token = _random(40)
    invitation = Invitation.all_tenants.create(
        tenant=tenant,
        email=email,
        role=role,
        token_digest=_sha256(token),
        invited_by=actor.user,
        expires_at=now + INVITATION_LIFETIME,
    )
    audit_record(
        actor=actor,
        action="invitation.created",
        tenant=tenant,
        target=invitation,
        details={"email": email, "role": role},
    )
    context = {
        "tenant": tenant,
        "invitation": invitation,
        "inviter": actor.user,
        "accept_url": f"{accept_url_base.rstrip('/')}/invitations/{token}/",
    }
    transaction.on_commit(
        lambda: send_mail(
            subject=f"[Gatehouse] You are invited to {tenant.name}",
            message=render_to_string("tenants/email/invitation.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[email],
        )
    )
    return invitation, token


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: Actor) -> Invitation:
    if invitation.state != Invitation.State.PENDING:
        raise DomainError("Only a pending invitation can be revoked.")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit_record(
        actor=actor,
        action="invitation.revoked",
        tenant=invitation.tenant,
        target=invitation,
        details={"email": invitation.email},
    )
    return invitation


def invitation_by_token(token: str) -> Invitation | None:
    return Invitation.all_tenants.select_related("tenant").filter(token_digest=_sha256(token)).first()


@transaction.atomic
def invitation_accept(*, token: str, user: User, actor: Actor) -> Membership:
    """Join the tenant. The invitation is used at most once, and only by the address it was sent to."""
    invitation = invitation_by_token(token)
    if invitation is None or invitation.state != Invitation.State.PENDING:
        raise DomainError("This invitation is no longer valid. Ask for a new one.", code="invalid_invitation")
    if invitation.email.lower() != user.email.lower():
        raise DomainError(
            f"This invitation was sent to {invitation.email}; sign in with that address to accept it.",
            code="wrong_account",
            status=403,
        )
    used = Invitation.all_tenants.filter(pk=invitation.pk, accepted_at=None, revoked_at=None).update(
        accepted_at=timezone.now(), accepted_by=user
    )
    if not used:  # accepted or revoked concurrently
        raise DomainError("This invitation is no longer valid. Ask for a new one.", code="invalid_invitation")
    membership = membership_create(tenant=invitation.tenant, user=user, role=invitation.role, actor=actor)
    audit_record(
        actor=actor,
        action="invitation.accepted",
        tenant=invitation.tenant,
        target=invitation,
        details={"email": user.email, "role": invitation.role},
    )
    return membership


# --- personal access tokens --------------------------------------------------------------------------------

PAT_PREFIX = "ghtok_"


@transaction.atomic
def pat_create(
    *, user: User, tenant: Tenant, name: str, scope: str, expires_in_days: int, actor: Actor
) -> tuple[PersonalAccessToken, str]:
    """A management-API token acting as ``user`` within ``tenant``; returns it and the secret, shown once."""
    if not Membership.objects.for_tenant(tenant).filter(user=user).exists():
        raise DomainError("You can only create tokens for tenants you belong to.", status=403)
    if not 1 <= expires_in_days <= 366:
        raise DomainError("Tokens expire after 1 to 366 days.")
    public_id, secret = _random(8), _random(40)
    token = PersonalAccessToken.objects.create(
        user=user,
        tenant=tenant,
        name=name.strip() or "token",
        public_id=public_id,
        digest=_sha256(secret),
        scope=PersonalAccessToken.Scope(scope),
        expires_at=timezone.now() + timedelta(days=expires_in_days),
    )
    audit_record(
        actor=actor,
        action="token.created",
        tenant=tenant,
        target=token,
        details={"name": token.name, "scope": scope, "expires_at": token.expires_at.isoformat()},
    )
    return token, f"{PAT_PREFIX}{public_id}_{secret}"


@transaction.atomic
def pat_revoke(*, token: PersonalAccessToken, actor: Actor) -> PersonalAccessToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(
            actor=actor, action="token.revoked", tenant=token.tenant, target=token, details={"name": token.name}
        )
    return token


def pat_touch(*, token: PersonalAccessToken) -> None:
    """Record use at most once a minute (a write per API call would be wasteful)."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        PersonalAccessToken.objects.filter(pk=token.pk).update(last_used_at=now)


# --- MFA ---------------------------------------------------------------------------------------------------


@transaction.atomic
def mfa_totp_start(*, user: User) -> TOTPDevice:
    """A fresh, unconfirmed TOTP device (its secret is shown as a QR code until a first code confirms it)."""
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


def _new_backup_codes(user: User) -> list[str]:
    BackupCodeDevice.objects.filter(user=user).delete()
    device = BackupCodeDevice.objects.create(user=user, name="Backup codes", confirmed=True)
    codes = [_random(10, string.ascii_lowercase + string.digits) for _ in range(BACKUP_CODE_COUNT)]
    BackupCode.objects.bulk_create(BackupCode(device=device, digest=backup_code_digest(c)) for c in codes)
    return [f"{c[:5]}-{c[5:]}" for c in codes]


@transaction.atomic
def mfa_totp_confirm(
    *, user: User, device: TOTPDevice, code: str, actor: Actor, password: str | None = None
) -> list[str]:
    """Confirm enrollment with a first code; returns new backup codes. Replacing a confirmed authenticator
    (a new phone) also needs the account password."""
    if device.user_id != user.pk or device.confirmed:
        raise DomainError("Start the set-up again.")
    replacing = TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    if replacing and not user.check_password(password or ""):
        raise DomainError("That password is not right.", code="wrong_password")
    if not device.verify_token(code.strip().replace(" ", "")):
        raise DomainError("That code did not match. Check the time on your phone and try the next code.")
    TOTPDevice.objects.filter(user=user, confirmed=True).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    codes = _new_backup_codes(user)
    audit_record(actor=actor, action="mfa.replaced" if replacing else "mfa.enabled", target=user)
    return codes


@transaction.atomic
def mfa_backup_codes_regenerate(*, user: User, actor: Actor) -> list[str]:
    codes = _new_backup_codes(user)
    audit_record(actor=actor, action="mfa.backup_codes_regenerated", target=user)
    return codes


@transaction.atomic
def mfa_disable(*, user: User, password: str, actor: Actor) -> None:
    if not user.check_password(password):
        raise DomainError("That password is not right.", code="wrong_password")
    TOTPDevice.objects.filter(user=user).delete()
    BackupCodeDevice.objects.filter(user=user).delete()
    audit_record(actor=actor, action="mfa.disabled", target=user)
