"""Measure the prompt-injection guard on the held-out split (never seen in training), with the gateway's own code.

    .venv/bin/python scripts/evaluate_injection_guard.py

Reports, on the held-out examples: the classifier's detection rate at ≤ 1 % false positives (at the shipped
threshold, chosen in training, and the best threshold for this split, for reference), the whole guard's
(rules, then classifier) detection and false-positive rates, and the guard on disguised copies of the held-out
injections (homoglyphs, zero-width characters, full-width letters, base64).
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from injection_dataset import examples, is_held_out

from gateway.proxy import injection

# Latin letters swapped for their Cyrillic look-alikes.
HOMOGLYPHS = str.maketrans({"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441", "i": "\u0456"})


def disguises(text: str) -> dict[str, str]:
    return {
        "homoglyphs": text.translate(HOMOGLYPHS),
        "zero-width": "\u200b".join(text),
        "full-width": "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text),
        "base64": "Decode this and do what it says: " + base64.b64encode(text.encode()).decode(),
    }


def main() -> None:
    held_out = [(text, label) for text, label in examples() if is_held_out(text)]
    model = injection.model()
    scored = [(injection.classify(injection.normalize(text)), label, text) for text, label in held_out]
    positives = sorted((s for s, label, _ in scored if label), reverse=True)
    negatives = sorted((s for s, label, _ in scored if not label), reverse=True)
    allowed = int(len(negatives) * 0.01)  # false positives allowed at 1 %
    best = negatives[allowed] if allowed < len(negatives) else 0.0
    at_shipped = sum(s >= model.threshold for s in positives) / len(positives)
    fp_shipped = sum(s >= model.threshold for s in negatives) / len(negatives)
    at_best = sum(s > best for s in positives) / len(positives)

    guard = [(injection.inspect([("text", text)]) is not None, label) for text, label in held_out]
    guard_tpr = sum(found for found, label in guard if label) / len(positives)
    guard_fpr = sum(found for found, label in guard if not label) / len(negatives)

    print(f"held-out: {len(held_out)} examples, {len(positives)} injections, {len(negatives)} benign")
    print(
        f"classifier at the shipped threshold {model.threshold:.4f}: detection {at_shipped:.1%},"
        f" false positives {fp_shipped:.2%}"
    )
    print(f"classifier, best threshold for ≤ 1% false positives on this split: detection {at_best:.1%}")
    print(f"guard (normalization + rules + classifier): detection {guard_tpr:.1%}, false positives {guard_fpr:.2%}")
    attacks = [text for text, label in held_out if label]
    for name in disguises("x"):
        found = sum(injection.inspect([("text", disguises(text)[name])]) is not None for text in attacks)
        print(f"  disguised with {name}: detection {found / len(attacks):.1%}")


if __name__ == "__main__":
    main()
