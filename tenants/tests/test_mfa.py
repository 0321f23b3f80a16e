"""Two-factor authentication: enrollment, login with a code, backup codes, reuse, throttling, step-up, policy."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants import services
from tenants.mfa import STEP_UP_SESSION_KEY
from tenants.models import AuditEvent, BackupCodeDevice, Membership
from tenants.permissions import PRIVILEGED
from tenants.tests.fixtures import PASSWORD, enroll_totp, login_verified, make_user, totp_code
from tenants.tests.test_persona_matrix import SAMPLES, _allowed_methods, _url, fingerprint, tenant_routes

pytestmark = pytest.mark.django_db


def _password_login(client: Client, email: str) -> str:
    response = client.post("/accounts/login/", {"login": email, "password": PASSWORD})
    assert response.status_code == 302, response.content[:500]
    return response["location"]


def _is_logged_in(client: Client) -> bool:
    return client.get("/home/").status_code == 200


def _wait_out_throttling(device: TOTPDevice) -> None:
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_timestamp=timezone.now() - timedelta(seconds=60))


def _enroll_through_the_pages(client: Client) -> tuple[TOTPDevice, list[str]]:
    page = client.get("/accounts/mfa/setup/")
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.content.decode())[1]
    device = TOTPDevice.objects.get(confirmed=False)
    assert secret  # the manual key is shown beside the QR code
    assert "<svg" in page.content.decode()
    done = client.post("/accounts/mfa/setup/", {"code": totp_code(device)})
    block = re.search(r'<pre[^>]*id="backup-codes">(.*?)</pre>', done.content.decode(), re.S)[1]
    codes = block.split()
    device.refresh_from_db()
    return device, codes


# --- enrollment ----------------------------------------------------------------------------------------------


def test_enrollment_confirms_with_a_first_code_and_shows_backup_codes_once():
    user = make_user("ada@example.test")
    client = Client()
    client.force_login(user)

    device, codes = _enroll_through_the_pages(client)

    assert device.confirmed
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert AuditEvent.all_tenants.filter(action="mfa.enabled", actor=user).exists()
    security = client.get("/accounts/security/").content.decode()
    assert "10 unused codes left" in security
    assert codes[0] not in security  # shown once, never again
    stored = list(BackupCodeDevice.objects.get(user=user).codes.values_list("digest", flat=True))
    assert not any(code.replace("-", "") in digest for code in codes for digest in stored)


def test_a_wrong_first_code_does_not_turn_mfa_on():
    user = make_user("ada@example.test")
    client = Client()
    client.force_login(user)
    client.get("/accounts/mfa/setup/")

    response = client.post("/accounts/mfa/setup/", {"code": "000000"})

    assert "did not match" in response.content.decode()
    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def test_replacing_the_authenticator_needs_the_password():
    user = make_user("ada@example.test")
    client = login_verified(Client(), user)
    old = TOTPDevice.objects.get(user=user)
    assert "Your password" in client.get("/accounts/mfa/setup/").content.decode()
    new = TOTPDevice.objects.get(user=user, confirmed=False)

    refused = client.post("/accounts/mfa/setup/", {"code": totp_code(new), "password": "guess"})
    assert "That password is not right." in refused.content.decode()
    assert TOTPDevice.objects.filter(pk=old.pk, confirmed=True).exists()

    replaced = client.post("/accounts/mfa/setup/", {"code": totp_code(new), "password": PASSWORD})
    assert replaced.status_code == 200
    assert list(TOTPDevice.objects.filter(user=user, confirmed=True)) == [new]
    assert AuditEvent.all_tenants.filter(action="mfa.replaced", actor=user).exists()


def test_disabling_needs_the_password():
    user = make_user("ada@example.test")
    client = login_verified(Client(), user)

    wrong = client.post("/accounts/mfa/disable/", {"password": "nope"})
    assert "That password is not right." in wrong.content.decode()
    assert TOTPDevice.objects.filter(user=user).exists()

    right = client.post("/accounts/mfa/disable/", {"password": PASSWORD})
    assert right.status_code == 302
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert AuditEvent.all_tenants.filter(action="mfa.disabled").exists()


# --- login ---------------------------------------------------------------------------------------------------


def test_login_without_mfa_completes_with_the_password():
    make_user("ada@example.test")
    client = Client()

    assert _password_login(client, "ada@example.test") == "/home/"
    assert _is_logged_in(client)


def test_login_with_mfa_is_not_complete_until_a_code_passes():
    user = make_user("ada@example.test")
    device = enroll_totp(user)
    client = Client()

    assert _password_login(client, user.email) == "/accounts/mfa/login/"
    assert not _is_logged_in(client)
    wrong = client.post("/accounts/mfa/login/", {"code": "123456"})
    assert "not valid" in wrong.content.decode()
    assert not _is_logged_in(client)
    _wait_out_throttling(device)  # one wrong code costs a 1 s wait

    right = client.post("/accounts/mfa/login/", {"code": totp_code(device)})

    assert right.status_code == 302
    assert _is_logged_in(client)
    assert client.session[STEP_UP_SESSION_KEY] > 0  # counts as a fresh verification


def test_the_otp_page_cannot_be_used_without_a_password_first():
    user = make_user("ada@example.test")
    device = enroll_totp(user)
    client = Client()

    response = client.post("/accounts/mfa/login/", {"code": totp_code(device)})

    assert response.status_code == 302
    assert response["location"] == "/accounts/login/"
    assert not _is_logged_in(client)


def test_a_totp_code_is_accepted_only_once():
    user = make_user("ada@example.test")
    device = enroll_totp(user)
    code = totp_code(device)
    first = Client()
    _password_login(first, user.email)
    first.post("/accounts/mfa/login/", {"code": code})
    assert _is_logged_in(first)

    second = Client()
    _password_login(second, user.email)
    replay = second.post("/accounts/mfa/login/", {"code": code})

    assert "not valid" in replay.content.decode()
    assert not _is_logged_in(second)


def test_a_backup_code_logs_in_once():
    user = make_user("ada@example.test")
    enroll_totp(user)
    codes = services.mfa_backup_codes_regenerate(user=user, actor=services.SYSTEM)
    first = Client()
    _password_login(first, user.email)

    first.post("/accounts/mfa/login/", {"code": codes[3].upper()})  # case and dash do not matter
    assert _is_logged_in(first)

    second = Client()
    _password_login(second, user.email)
    second.post("/accounts/mfa/login/", {"code": codes[3]})
    assert not _is_logged_in(second)
    assert BackupCodeDevice.objects.get(user=user).codes.count() == 9


def test_wrong_codes_are_throttled_even_for_the_right_code():
    user = make_user("ada@example.test")
    device = enroll_totp(user)
    client = Client()
    _password_login(client, user.email)
    for _ in range(3):
        client.post("/accounts/mfa/login/", {"code": "000000"})

    throttled = client.post("/accounts/mfa/login/", {"code": totp_code(device)})

    assert "Too many wrong codes" in throttled.content.decode()
    assert not _is_logged_in(client)
    # once the back-off has passed (1, 2, 4 s after 1, 2, 3 failures), the right code works again
    _wait_out_throttling(device)
    client.post("/accounts/mfa/login/", {"code": totp_code(device)})
    assert _is_logged_in(client)


def test_too_many_wrong_passwords_lock_the_account_with_a_clear_message():
    make_user("ada@example.test")
    client = Client()
    for _ in range(5):
        client.post("/accounts/login/", {"login": "ada@example.test", "password": "wrong"})

    locked = client.post("/accounts/login/", {"login": "ada@example.test", "password": PASSWORD})

    assert locked.status_code == 200
    assert "Too many failed login attempts" in locked.content.decode()
    assert not _is_logged_in(client)


# --- step-up -------------------------------------------------------------------------------------------------


def _privileged_routes() -> list[tuple[str, str, str]]:
    """Every page method whose permission is privileged, from the URL conf (the API: see test_api.py)."""
    routes = []
    for name, route, callback in tenant_routes():
        if getattr(callback, "view_class", None) is not None:
            continue
        for method, perm in (("GET", callback.tenant_permission), ("POST", callback.tenant_post_permission)):
            if perm in PRIVILEGED and method in _allowed_methods(callback):
                routes.append((name, route, method))
    return routes


def test_every_privileged_page_action_is_covered_by_the_step_up_test():
    names = {(name, method) for name, _, method in _privileged_routes()}

    assert {("tenants:settings", "GET"), ("tenants:member-role", "POST"), ("tenants:invite", "POST")} <= names


@pytest.mark.parametrize(("name", "route", "method"), _privileged_routes(), ids=lambda v: str(v))
def test_privileged_action_with_a_stale_verification_goes_to_verify_and_comes_back(world, name, route, method):
    client = login_verified(Client(), world.users["owner"])
    session = client.session
    session[STEP_UP_SESSION_KEY] = 0
    session.save()
    url = _url(route, world, name)
    page_with_the_form = f"/t/{world.tenant.slug}/members/"
    before = fingerprint()

    if method == "GET":
        response = client.get(url)
    else:
        response = client.post(url, SAMPLES[(name, "POST")](world), headers={"referer": page_with_the_form})

    assert response.status_code == 302
    target = urlsplit(response["location"])
    assert target.path == "/accounts/mfa/verify/"
    assert fingerprint() == before  # nothing happened yet
    next_url = parse_qs(target.query)["next"][0]
    assert next_url == (url if method == "GET" else page_with_the_form)

    device = TOTPDevice.objects.get(user=world.users["owner"])
    verified = client.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": next_url})
    assert verified.status_code == 302
    assert verified["location"] == next_url
    assert client.get(next_url).status_code == 200


@pytest.mark.parametrize("path", ["/accounts/tokens/", "/accounts/mfa/backup-codes/"])
def test_account_level_privileged_actions_need_a_step_up_too(world, path):
    client = login_verified(Client(), world.users["viewer"])
    session = client.session
    session[STEP_UP_SESSION_KEY] = 0
    session.save()

    response = client.post(path, {}) if "backup" in path else client.get(path)

    assert response.status_code == 302
    assert response["location"].startswith("/accounts/mfa/verify/")


def test_privileged_action_without_mfa_sends_the_user_to_set_it_up(world):
    client = Client()
    client.force_login(world.users["admin"])  # no device at all

    response = client.get(f"/t/{world.tenant.slug}/members/invite/")

    assert response.status_code == 302
    assert response["location"].startswith("/accounts/mfa/setup/?next=")


def test_verify_rejects_open_redirects(world):
    client = login_verified(Client(), world.users["owner"])
    device = TOTPDevice.objects.get(user=world.users["owner"])

    response = client.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "https://evil.test/"})

    assert response["location"] == "/home/"


# --- tenant policy -------------------------------------------------------------------------------------------


def test_tenant_requiring_mfa_turns_away_members_without_it(world):
    services.tenant_update_settings(
        tenant=world.tenant,
        actor=services.SYSTEM,
        name=world.tenant.name,
        require_mfa=True,
        default_region="eu",
        timezone_name="UTC",
    )
    without = Client()
    without.force_login(world.users["viewer"])
    with_mfa = login_verified(Client(), world.users["developer"])

    turned_away = without.get(f"/t/{world.tenant.slug}/")
    let_in = with_mfa.get(f"/t/{world.tenant.slug}/")

    assert turned_away.status_code == 302
    assert turned_away["location"].startswith("/accounts/mfa/setup/")
    assert let_in.status_code == 200
    assert Membership.objects.for_tenant(world.tenant).filter(user=world.users["viewer"]).exists()


def test_a_privileged_form_post_without_mfa_returns_to_the_form_page_after_set_up(world):
    """Regression: the set-up used to send the user back to the POST-only URL (a 405)."""
    client = Client()
    client.force_login(world.users["admin"])
    members = f"/t/{world.tenant.slug}/members/"
    before = fingerprint()

    response = client.post(
        f"/t/{world.tenant.slug}/members/{world.memberships['viewer'].pk}/role/",
        {"role": "developer"},
        headers={"referer": f"http://testserver{members}"},
    )

    assert response.status_code == 302
    assert parse_qs(urlsplit(response["location"]).query)["next"] == [f"http://testserver{members}"]
    assert fingerprint() == before
