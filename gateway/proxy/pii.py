"""PII: find personal data and secrets in a call's text, and mask, redact, pseudonymize or refuse it.

Detectors: email, phone (``phonenumbers``), payment card (Luhn), IBAN (mod-97), US SSN, IPv4/IPv6, secrets
(cloud and API key patterns, private keys, JWTs), and tenant-defined patterns (run with a timeout, so a
pathological pattern cannot stall the gateway). Actions, per entity:

- ``mask``: ``[EMAIL]`` — the provider sees the kind of data, not the data;
- ``redact``: ``[REDACTED]`` — not even the kind;
- ``pseudonymize``: ``[EMAIL_1a2b3c4d]``, a placeholder derived from the value with a key of the consumer
  tenant (the same value gets the same placeholder in every call of that tenant, and no other tenant's
  placeholder ever maps to it); the provider sees placeholders, and the client gets the originals back in the
  answer — also when a placeholder is split across streamed chunks;
- ``block``: the call is refused (400 ``pii_detected``), naming the kind of data and where it was found.

Every text of a request is inspected: every message (string or parts), tool-call arguments, names, the
embeddings input. Answers are inspected too: placeholders are restored, and entities found in a non-streamed
answer are masked or redacted (a block there masks: the answer is already paid for).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
import regex

ACTIONS = ("pseudonymize", "mask", "redact", "block")  # from the mildest to the strictest
ENTITIES = ("email", "phone", "card", "iban", "ssn", "ip", "secret")
LABELS = {
    "email": "an email address",
    "phone": "a phone number",
    "card": "a payment card number",
    "iban": "an IBAN",
    "ssn": "a US social security number",
    "ip": "an IP address",
    "secret": "a secret (an API key or credential)",
}
CUSTOM_TIMEOUT_SECONDS = 0.05

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}\b")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_SSN = re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
SECRETS = re.compile(
    "|".join(
        (
            r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key id
            r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}",  # OpenAI, Anthropic
            r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",  # GitHub
            r"\bxox[abprs]-[A-Za-z0-9-]{10,}",  # Slack
            r"\bAIza[0-9A-Za-z_-]{35}\b",  # Google
            r"\b[rs]k_live_[0-9A-Za-z]{16,}\b",  # Stripe
            r"\bgh_[A-Za-z0-9]{8}_[A-Za-z0-9]{20,}\b",  # Gatehouse keys
            r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWT
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        )
    )
)
PLACEHOLDER = re.compile(r"\[([A-Z][A-Z0-9_]{0,30})_([0-9a-f]{8})\]")
MAX_PLACEHOLDER = 44  # "[" + 31 + "_" + 8 + "]" and some


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
    except ValueError:
        return False


def _ip_valid(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


Finder = Callable[[str], Iterator[tuple[int, int]]]


def _matches(pattern: re.Pattern[str], check: Callable[[str], bool] | None = None) -> Finder:
    def find(text: str) -> Iterator[tuple[int, int]]:
        for match in pattern.finditer(text):
            if check is None or check(match.group()):
                yield match.span()

    return find


def _phones(text: str) -> Iterator[tuple[int, int]]:
    if sum(c.isdigit() for c in text) < 7:  # no phone number fits in fewer digits: skip the costly matcher
        return
    for match in phonenumbers.PhoneNumberMatcher(text, "US", leniency=phonenumbers.Leniency.VALID):
        yield match.start, match.end


FINDERS: dict[str, Finder] = {
    "email": _matches(_EMAIL),
    "card": _matches(_CARD, lambda s: 13 <= len(re.sub(r"\D", "", s)) <= 19 and _luhn(re.sub(r"\D", "", s))),
    "iban": _matches(_IBAN, _iban_valid),
    "ssn": _matches(_SSN),
    "ip": lambda text: (span for pattern in (_IPV4, _IPV6) for span in _matches(pattern, _ip_valid)(text)),
    "secret": _matches(SECRETS),
    "phone": _phones,
}
# When spans overlap, the kind found first in this order wins (a card number also looks like a phone number).
PRECEDENCE = ("secret", "email", "iban", "card", "ssn", "ip", "phone")


@dataclass(frozen=True)
class CustomDetector:
    name: str  # upper-case, the placeholder's label
    pattern: str
    action: str


@dataclass(frozen=True)
class PiiRules:
    """What to do with each kind of data, for one call (plain data in the snapshot)."""

    actions: tuple[tuple[str, str], ...] = ()  # (entity, action)
    custom: tuple[CustomDetector, ...] = ()
    source: str = ""

    def __bool__(self) -> bool:
        return bool(self.actions or self.custom)


class PiiBlocked(Exception):
    def __init__(self, label: str, where: str) -> None:
        super().__init__(f"{label} in {where}")
        self.label, self.where = label, where


@dataclass
class Scrubber:
    """Applies ``rules`` to one call: rewrites its request, then restores and scrubs its answer."""

    rules: PiiRules
    tenant_key: bytes  # the consumer tenant's pseudonym key (derived from the server secret)
    originals: dict[str, str] = field(default_factory=dict)  # placeholder → original, this call's only
    _custom: list[tuple[CustomDetector, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._custom = [(d, regex.compile(d.pattern)) for d in self.rules.custom]

    def _spans(self, text: str) -> list[tuple[int, int, str, str, str]]:
        """(start, end, entity, label, action) of every detection, non-overlapping, in text order."""
        found: list[tuple[int, int, str, str, str]] = []
        actions = dict(self.rules.actions)
        for entity in PRECEDENCE:
            if entity in actions:
                found += [(s, e, entity, entity.upper(), actions[entity]) for s, e in FINDERS[entity](text)]
        for detector, pattern in self._custom:
            try:
                spans = [m.span() for m in pattern.finditer(text, timeout=CUSTOM_TIMEOUT_SECONDS)]
            except TimeoutError:
                spans = []
            found += [(s, e, detector.name.lower(), detector.name, detector.action) for s, e in spans if e > s]
        kept: list[tuple[int, int, str, str, str]] = []
        for span in found:  # earlier kinds win overlaps
            if all(span[1] <= k[0] or span[0] >= k[1] for k in kept):
                kept.append(span)
        return sorted(kept)

    def placeholder(self, label: str, value: str) -> str:
        digest = hmac.new(self.tenant_key, f"{label}\0{value}".encode(), hashlib.sha256).hexdigest()[:8]
        token = f"[{label}_{digest}]"
        self.originals[token] = value
        return token

    def scrub(self, text: str, where: str, *, answer: bool = False) -> str:
        spans = self._spans(text)
        if not spans:
            return text
        out, last = [], 0
        for start, end, entity, label, action in spans:
            value = text[start:end]
            if action == "block" and not answer:
                raise PiiBlocked(LABELS.get(entity, f"data matching {label}"), where)
            out.append(text[last:start])
            if action == "pseudonymize" and not answer:
                out.append(self.placeholder(label, value))
            elif action == "redact":
                out.append("[REDACTED]")
            else:
                out.append(f"[{label}]")
            last = end
        out.append(text[last:])
        return "".join(out)

    def restore(self, text: str) -> str:
        if not self.originals or "[" not in text:
            return text
        return PLACEHOLDER.sub(lambda m: self.originals.get(m.group(), m.group()), text)

    # --- requests and answers, part by part ---------------------------------------------------------------

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body with every text part scrubbed (a new dict; the client's stays as it was)."""
        body = dict(body)
        if isinstance(body.get("messages"), list):
            body["messages"] = [self._message(m, f"messages[{i}]") for i, m in enumerate(body["messages"])]
        if "input" in body:
            body["input"] = self._value(body["input"], "input")
        return body

    def _message(self, message: Any, where: str) -> Any:
        if not isinstance(message, dict):
            return message
        return {
            k: self._value(v, f"{where}.{k}") if k not in ("role", "tool_call_id") else v for k, v in message.items()
        }

    def _value(self, value: Any, where: str, *, answer: bool = False) -> Any:
        if isinstance(value, str):
            return self.scrub(value, where, answer=answer)
        if isinstance(value, list):
            return [self._value(v, f"{where}[{i}]", answer=answer) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {
                k: v if k in ("type", "id", "role", "index") else self._value(v, f"{where}.{k}", answer=answer)
                for k, v in value.items()
            }
        return value

    def answer(self, answer: dict[str, Any]) -> dict[str, Any]:
        """A non-streamed answer: placeholders restored, then what the model produced itself scrubbed."""
        for choice in answer.get("choices") or ():
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict):
                for key in ("content", "tool_calls"):
                    if key in message:
                        message[key] = self._restored(self._value(message[key], key, answer=True))
        return answer

    def _restored(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.restore(value)
        if isinstance(value, list):
            return [self._restored(v) for v in value]
        if isinstance(value, dict):
            return {k: self._restored(v) for k, v in value.items()}
        return value


class StreamRestorer:
    """Puts originals back into streamed text, also when a placeholder arrives split over several chunks: text
    that could still be the start of a placeholder is held back until it is clear."""

    def __init__(self, scrubber: Scrubber) -> None:
        self.scrubber = scrubber
        self.pending: dict[int, str] = {}  # by choice index

    def feed(self, index: int, text: str) -> str:
        text = self.pending.pop(index, "") + text
        cut = text.rfind("[")
        if cut != -1 and "]" not in text[cut:] and len(text) - cut < MAX_PLACEHOLDER:
            held = text[cut:]
            if re.fullmatch(r"\[[A-Z0-9_]*(?:_[0-9a-f]{0,8})?", held):
                self.pending[index], text = held, text[:cut]
        return self.scrubber.restore(text)

    def flush(self, index: int) -> str:
        return self.scrubber.restore(self.pending.pop(index, ""))


# Payload logs (a policy's `payloads`) keep texts with every kind of data the detectors know masked, whatever
# the call's own PII rules are: a log is read later, by other people, for longer.
LOG_RULES = PiiRules(actions=tuple((entity, "mask") for entity in ENTITIES), source="payload log")


def masked_for_log(value: Any) -> Any:
    """A copy of request parts or answer texts fit for a payload log (strings, lists and dicts, as in bodies)."""
    return Scrubber(LOG_RULES, b"")._value(value, "log", answer=True)
