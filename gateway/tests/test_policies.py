"""Policies: where they attach, how the levels combine, and that the gateway enforces exactly what they say."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from gateway import services as catalog
from gateway.models import Plan, Policy
from gateway.policies import RulesError, effective_policy, validate_rules
from gateway.proxy import limits
from portal.errors import DomainError
from subscriptions import services as subscription_services
from tenants import services as tenant_services
from tenants.models import AuditEvent

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
SYSTEM = tenant_services.SYSTEM


# --- combining levels (pure) --------------------------------------------------------------------------------


def _effective(publisher_layers, consumer_layers=()):
    return effective_policy(
        subscription_id=7, publisher_layers=publisher_layers, consumer_layers=consumer_layers, tenant_id=3,
        timezone="Europe/Paris",
    )  # fmt: skip


def test_on_the_publishers_side_the_most_specific_level_wins_rule_by_rule():
    policy = _effective(
        [
            ("platform default", {"rate_limits": {"requests_per_minute": 1000, "tokens_per_minute": 50_000}}),
            ("publisher acme", {"rate_limits": {"requests_per_minute": 600}, "quota": {"cost_micros": 9_000_000}}),
            ("API acme/assistant v2", {"quota": {"period": "day"}}),
            ("plan Free", {"rate_limits": {"requests_per_minute": 10}}),
        ]
    )

    assert {(limit.metric, limit.limit, limit.source) for limit in policy.limits} == {
        ("requests", 10, "plan Free"),
        ("tokens", 50_000, "platform default"),
    }
    assert all((limit.scope, limit.subject) == ("subscription", "7") for limit in policy.limits)
    [quota] = policy.quotas
    assert (quota.metric, quota.limit, quota.period, quota.source) == ("cost", 9_000_000, "day", "publisher acme")
    assert (quota.timezone, quota.tenant_id) == ("Europe/Paris", 3)  # calendar periods of the consumer tenant


def test_the_consumers_side_counts_its_own_subjects_and_can_only_tighten():
    policy = _effective(
        [("plan Free", {"rate_limits": {"requests_per_minute": 10}, "max_tokens": {"default": 512}})],
        [
            ("tenant", 3, ("consumer globex", {"rate_limits": {"requests_per_minute": 1000}})),
            ("application", 5, ("application web", {"quota": {"requests": 100}, "max_tokens": {"default": 2048}})),
            ("key", "AbCdEf12", ("key gh_AbCdEf12", {"max_tokens": {"default": 64}})),
        ],
    )

    # A looser consumer limit is one more counter to fit, never a replacement of the plan's 10.
    assert {(limit.scope, limit.subject, limit.limit) for limit in policy.limits} == {
        ("subscription", "7", 10),
        ("tenant", "3", 1000),
    }
    assert [(q.scope, q.subject, q.metric, q.limit) for q in policy.quotas] == [("application", "5", "requests", 100)]
    assert (policy.max_tokens_default, policy.max_tokens_source) == (64, "key gh_AbCdEf12")


def test_a_quota_period_is_the_calendar_day_or_month_of_the_tenants_timezone():
    day = limits.Quota("tenant", "1", "requests", 5, "day", "Asia/Tokyo")
    month = limits.Quota("tenant", "1", "requests", 5, "month", "Asia/Tokyo")
    moment = 1_798_729_200.0  # 2026-12-31 15:00 UTC = 2027-01-01 00:00 in Tokyo

    assert (day.at(moment).label, day.at(moment).seconds_left) == ("20270101", 86_400)
    assert (day.at(moment - 1).label, day.at(moment - 1).seconds_left) == ("20261231", 1)
    assert month.at(moment).label == "202701"
    assert month.at(moment).seconds_left == 31 * 86_400


def test_a_dst_day_is_as_long_as_the_calendar_says():
    # 2026-03-29 in Paris has 23 hours: midnight to midnight is 82,800 s.
    quota = limits.Quota("tenant", "1", "requests", 5, "day", "Europe/Paris")
    midnight = 1_774_738_800.0  # 2026-03-29 00:00 Paris (UTC+1)

    assert quota.at(midnight).seconds_left == 23 * 3600


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"rate_limits": {"requests_per_minute": 0}}, "rate_limits.requests_per_minute: 0 is less than the minimum"),
        ({"rate_limits": {"requests": 5}}, "rate_limits: Additional properties are not allowed"),
        ({"quota": {"period": "week"}}, "quota.period: 'week' is not one of ['day', 'month']"),
        ({"quota": {"cost_micros": 1.5}}, "quota.cost_micros: 1.5 is not of type 'integer'"),
        ({"quota": {"grace_percent": 101}}, "quota.grace_percent: 101 is greater than the maximum of 100"),
        ({"budget": {}}, "the document: Additional properties are not allowed ('budget' was unexpected)"),
        ([], "the document: [] is not of type 'object'"),
    ],
)
def test_rules_that_break_the_schema_are_refused_with_where_and_why(rules, message):
    with pytest.raises(RulesError) as refused:
        validate_rules(rules)

    assert message in str(refused.value)


# --- the service ---------------------------------------------------------------------------------------------


def test_setting_a_policy_is_validated_audited_and_empty_rules_remove_it(market):
    with pytest.raises(DomainError) as refused:
        catalog.policy_set(level="consumer", target=market.globex, rules={"quota": {"period": "week"}}, actor=SYSTEM)
    assert refused.value.code == "invalid_policy"
    assert not Policy.objects.exists()

    rules = {"rate_limits": {"requests_per_minute": 100}}
    policy = catalog.policy_set(level="consumer", target=market.globex, rules=rules, actor=SYSTEM)
    catalog.policy_set(level="consumer", target=market.globex, rules={}, actor=SYSTEM)

    assert policy is not None
    assert policy.label == "consumer globex"
    assert not Policy.objects.exists()
    audit = list(AuditEvent.all_tenants.filter(action__startswith="policy.").order_by("pk"))
    assert [a.action for a in audit] == ["policy.set", "policy.removed"]
    assert {a.tenant_id for a in audit} == {market.globex.pk}
    assert audit[0].details == {"level": "consumer", "before": {}, "after": rules}


def test_a_policy_attaches_only_to_what_its_level_names(market):
    with pytest.raises(DomainError):
        catalog.policy_set(level="application", target=market.globex, rules={}, actor=SYSTEM)
    with pytest.raises(DomainError):
        catalog.policy_set(level="platform", target=market.globex, rules={}, actor=SYSTEM)


# --- enforced by the gateway ---------------------------------------------------------------------------------


async def call(gateway, auth):
    return await gateway.post("/v1/chat/completions", json=CHAT, headers=auth)


@pytest.mark.django_db(transaction=True)
async def test_a_key_policy_limits_that_key_and_names_itself(gateway, served, mock_llm):
    key = served["key"]
    await sync_to_async(catalog.policy_set)(
        level="key", target=key, rules={"rate_limits": {"requests_per_minute": 1}}, actor=SYSTEM
    )

    answers = [await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"]) for _ in range(2)]

    assert [a.status_code for a in answers] == [200, 429]
    assert f"(set by key gh_{key.public_id})" in answers[1].json()["error"]["message"]


@pytest.mark.django_db(transaction=True)
async def test_an_application_policy_is_shared_by_all_its_keys(gateway, served, market):
    await sync_to_async(catalog.policy_set)(
        level="application", target=market.app, rules={"rate_limits": {"requests_per_minute": 2}}, actor=SYSTEM
    )
    _, other = await sync_to_async(subscription_services.api_key_create)(application=market.app, name="2", actor=SYSTEM)
    other_auth = {"authorization": f"Bearer {other}"}

    answers = [await call(gateway, auth) for auth in (served["auth"], other_auth, other_auth)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert "application globex-web" in answers[2].json()["error"]["message"]


@pytest.mark.django_db(transaction=True)
async def test_a_consumer_tenant_policy_is_shared_by_all_its_applications(gateway, served, market):
    def second_application() -> str:
        app = subscription_services.application_create(tenant=market.globex, slug="batch", name="Batch", actor=SYSTEM)
        subscription_services.subscription_request(
            application=app, api=market.api, plan=market.free, actor=market.actor(market.developer)
        )
        catalog.policy_set(
            level="consumer", target=market.globex, rules={"rate_limits": {"requests_per_minute": 2}}, actor=SYSTEM
        )
        return subscription_services.api_key_create(application=app, name="b", actor=SYSTEM)[1]

    other_auth = {"authorization": f"Bearer {await sync_to_async(second_application)()}"}

    answers = [await call(gateway, auth) for auth in (served["auth"], other_auth, served["auth"])]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert "per minute (set by consumer globex)" in answers[2].json()["error"]["message"]


@pytest.mark.django_db(transaction=True)
async def test_a_looser_consumer_policy_does_not_lift_the_plans_limit(gateway, served, market):
    def limits_set() -> None:
        Plan.objects.filter(pk=market.free.pk).update(requests_per_minute=2)
        catalog.policy_set(
            level="application", target=market.app, rules={"rate_limits": {"requests_per_minute": 1000}}, actor=SYSTEM
        )

    await sync_to_async(limits_set)()

    answers = [await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"]) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert "(set by plan Free)" in answers[2].json()["error"]["message"]


@pytest.mark.django_db(transaction=True)
async def test_a_version_policy_applies_to_that_versions_model_only(gateway, served, market):
    version = await sync_to_async(market.api.versions.get)()
    await sync_to_async(catalog.policy_set)(
        level="version", target=version, rules={"rate_limits": {"requests_per_minute": 1}}, actor=SYSTEM
    )

    answers = [await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"]) for _ in range(2)]

    assert [a.status_code for a in answers] == [200, 429]
    assert f"(set by API {version})" in answers[1].json()["error"]["message"]


@pytest.mark.django_db(transaction=True)
async def test_a_policy_change_reaches_a_gateway_that_already_cached_the_key(gateway, served, market):
    assert (await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])).status_code == 200

    await sync_to_async(catalog.policy_set)(
        level="publisher", target=market.acme, rules={"rate_limits": {"requests_per_minute": 1}}, actor=SYSTEM
    )
    answers = [await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"]) for _ in range(2)]

    assert [a.status_code for a in answers] == [200, 429]  # counted from the change on
    assert "(set by publisher acme)" in answers[1].json()["error"]["message"]


# --- access rules --------------------------------------------------------------------------------------------


def test_an_address_that_is_not_a_network_is_refused_with_where():
    with pytest.raises(RulesError, match=r"access.ip_allow.1: '10.0.0.300/8' is not an IP address or network"):
        validate_rules({"access": {"ip_allow": ["10.0.0.0/8", "10.0.0.300/8"]}})


@pytest.mark.parametrize(
    ("hours", "local_time", "refused"),
    [
        ({"from": "08:00", "to": "18:00"}, "2026-11-25 07:59", True),  # a Wednesday, Paris
        ({"from": "08:00", "to": "18:00"}, "2026-11-25 08:00", False),
        ({"from": "08:00", "to": "18:00"}, "2026-11-25 18:00", True),
        ({"from": "08:00", "to": "18:00", "days": ["mon", "tue"]}, "2026-11-25 12:00", True),
        ({"from": "22:00", "to": "06:00", "days": ["tue"]}, "2026-11-25 03:00", False),  # Tuesday's night shift
        ({"from": "22:00", "to": "06:00", "days": ["tue"]}, "2026-11-25 22:30", True),  # Wednesday's: not allowed
        ({"from": "00:00", "to": "24:00", "days": ["sat", "sun"]}, "2026-11-28 23:59", False),
    ],
)
def test_time_windows_are_read_in_the_tenants_timezone(hours, local_time, refused):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    policy = _effective([("consumer globex", {"access": {"hours": hours}})])
    moment = datetime.strptime(local_time, "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo("Europe/Paris")).timestamp()

    [rule] = policy.access
    assert rule.refuses_time(moment) is refused


def test_allowed_regions_of_every_level_intersect():
    policy = _effective(
        [("publisher acme", {"access": {"regions": ["eu", "us"]}}), ("plan Free", {"access": {"regions": ["us"]}})],
        [("tenant", 3, ("consumer globex", {"access": {"regions": ["eu", "us", "apac"]}}))],
    )

    assert policy.regions == {"us"}
    assert policy.regions_source == "publisher acme, plan Free, consumer globex"


async def _set(level, target, rules) -> None:
    await sync_to_async(catalog.policy_set)(level=level, target=target, rules=rules, actor=SYSTEM)


@pytest.mark.django_db(transaction=True)
async def test_ip_rules_of_the_application_and_the_tenant_both_apply(gateway, served, market, mock_llm):
    # The in-process client calls from 127.0.0.1.
    await _set("application", market.app, {"access": {"ip_allow": ["10.0.0.0/8"]}})
    outside = await call(gateway, served["auth"])
    await _set("application", market.app, {"access": {"ip_allow": ["127.0.0.0/8"]}})
    inside = await call(gateway, served["auth"])
    await _set("consumer", market.globex, {"access": {"ip_deny": ["127.0.0.1"]}})
    denied = await call(gateway, served["auth"])

    assert (outside.status_code, outside.json()["error"]["code"]) == (403, "ip_not_allowed")
    assert "(set by application globex-web)" in outside.json()["error"]["message"]
    assert inside.status_code == 200
    assert (denied.status_code, denied.json()["error"]["code"]) == (403, "ip_not_allowed")
    assert "(set by consumer globex)" in denied.json()["error"]["message"]
    assert len(mock_llm.journal) == 1


@pytest.mark.django_db(transaction=True)
async def test_calls_outside_the_allowed_hours_are_refused(gateway, served, mock_llm):
    import time as clock

    now = clock.gmtime()  # the market's tenants keep the default timezone, UTC
    later, after = (now.tm_hour + 2) % 24, (now.tm_hour + 3) % 24
    await _set("key", served["key"], {"access": {"hours": {"from": f"{later:02d}:00", "to": f"{after:02d}:00"}}})

    refused = await call(gateway, served["auth"])

    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "outside_allowed_hours")
    assert f"every day {later:02d}:00 to {after:02d}:00 (UTC)" in refused.json()["error"]["message"]
    assert len(mock_llm.journal) == 0


@pytest.mark.django_db(transaction=True)
async def test_data_residency_routes_only_to_allowed_regions(gateway, served, market, mock_llm):
    from gateway.tests.fixtures import recorded_usage

    await sync_to_async(Plan.objects.filter(pk=market.free.pk).update)(regions=["us"])
    refused = await call(gateway, served["auth"])  # the only deployment runs in "eu" (the default)
    await sync_to_async(served["route_to"])(f"{mock_llm.url}/v1", "in-us", region="us", replace=False)
    await _set("consumer", market.globex, {"access": {"regions": ["us", "eu"]}})  # may not widen the plan's
    answered = [await call(gateway, served["auth"]) for _ in range(3)]

    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "region_not_allowed")
    assert "not served in the regions this call may use (us; set by plan Free)" in refused.json()["error"]["message"]
    assert [a.status_code for a in answered] == [200, 200, 200]
    assert {e.deployment_name for e in await recorded_usage() if e.status == 200} == {"in-us"}


def test_each_quota_counts_per_the_period_of_the_level_that_set_it():
    policy = _effective(
        [
            ("publisher acme", {"quota": {"period": "day", "requests": 1000}}),
            ("plan Standard", {"quota": {"period": "month", "cost_micros": 50_000_000}}),
        ]
    )

    assert {(q.metric, q.period, q.source) for q in policy.quotas} == {
        ("requests", "day", "publisher acme"),
        ("cost", "month", "plan Standard"),
    }
