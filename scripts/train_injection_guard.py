"""Train the prompt-injection classifier and write gateway/injection_model.json (run offline; the gateway only
reads the file).

    python -m venv .cache/train-venv && .cache/train-venv/bin/pip install scikit-learn==1.8.0
    .cache/train-venv/bin/python scripts/train_injection_guard.py

Features are the gateway's own (gateway/proxy/injection.py: ``normalize`` then ``terms``: word unigrams and
bigrams), weighted TF-IDF with sublinear term frequency and L2 norm, as the gateway computes them. A logistic
regression is fitted on the training split (the held-out 30 % is never seen), pruned to the strongest
``KEEP`` terms and fitted again on those, so the shipped file is small and scores exactly as trained. The
threshold is the one that keeps false positives at or below 1 % in 5-fold cross-validation on the training
split. scripts/evaluate_injection_guard.py measures it on the held-out split.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction import DictVectorizer
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from injection_dataset import examples, is_held_out

from gateway.proxy.injection import MODEL_PATH, normalize, terms

KEEP = 6000
MAX_FALSE_POSITIVES = 0.005  # in cross-validation: a margin under the 1 % the held-out split is held to


def _fit(counts: list[dict[str, int]], labels: np.ndarray, vocabulary: list[str] | None = None) -> Any:
    vectorizer = DictVectorizer(sort=True)
    if vocabulary is not None:
        vectorizer.fit([dict.fromkeys(vocabulary, 1)])
        matrix = vectorizer.transform(counts)
    else:
        matrix = vectorizer.fit_transform(counts)
    tfidf = TfidfTransformer(sublinear_tf=True, norm="l2", smooth_idf=True)
    features = tfidf.fit_transform(matrix)
    model = LogisticRegression(C=4.0, class_weight="balanced", max_iter=4000)
    model.fit(features, labels)
    return vectorizer, tfidf, model, features


def main() -> None:
    data = [(text, label) for text, label in examples() if not is_held_out(text)]
    counts = [dict(terms(normalize(text))) for text, _ in data]
    labels = np.array([label for _, label in data], dtype=int)
    vectorizer, _, model, _ = _fit(counts, labels)
    names = vectorizer.get_feature_names_out()
    strongest = np.argsort(-np.abs(model.coef_[0]))[:KEEP]
    vocabulary = sorted(names[i] for i in strongest)
    vectorizer, tfidf, model, features = _fit(counts, labels, vocabulary)

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    scores = cross_val_predict(
        LogisticRegression(C=4.0, class_weight="balanced", max_iter=4000), features, labels, cv=folds,
        method="predict_proba",
    )[:, 1]  # fmt: skip
    negatives = np.sort(scores[labels == 0])
    threshold = float(negatives[int(np.ceil(len(negatives) * (1 - MAX_FALSE_POSITIVES))) - 1]) + 1e-9
    detected = float((scores[labels == 1] >= threshold).mean())

    weights = {
        term: [round(float(idf), 6), round(float(coef), 6)]
        for term, idf, coef in zip(vectorizer.get_feature_names_out(), tfidf.idf_, model.coef_[0], strict=True)
        if coef != 0
    }
    MODEL_PATH.write_text(
        json.dumps(
            {
                "about": "Prompt-injection classifier: logistic regression over TF-IDF word 1-2-grams of "
                "gateway.proxy.injection.normalize(text). Trained by scripts/train_injection_guard.py.",
                "trained_on": {"examples": len(data), "injections": int(labels.sum())},
                "cross_validated": {"threshold_false_positive_rate": MAX_FALSE_POSITIVES, "detection_rate": detected},
                "threshold": threshold,
                "intercept": float(model.intercept_[0]),
                "weights": weights,
            },
            separators=(",", ":"),
            sort_keys=True,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"{len(data)} training examples ({int(labels.sum())} injections), {len(weights)} terms kept")
    print(f"threshold {threshold:.4f}: cross-validated detection {detected:.1%} at ≤ {MAX_FALSE_POSITIVES:.1%} FPR")
    print(f"wrote {MODEL_PATH.relative_to(Path.cwd()) if MODEL_PATH.is_relative_to(Path.cwd()) else MODEL_PATH}")


if __name__ == "__main__":
    main()
