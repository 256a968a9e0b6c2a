"""Model-free baselines: BM25 over the tokenizer's tokens, token-level edit distance, seeded random scores."""

from __future__ import annotations

import numpy as np

from ...core.typing import DocTokenMatrix, ScoreMatrix


def bm25_scores(queries: list[list[str]], docs: list[list[str]]) -> ScoreMatrix:
    """Okapi BM25 (rank-bm25 defaults k1=1.5, b=0.75) of each query's tokens against every training document."""
    from rank_bm25 import BM25Okapi

    index = BM25Okapi([d if d else ["<empty>"] for d in docs])
    out = np.zeros((len(queries), len(docs)), dtype=np.float64)
    for i, q in enumerate(queries):
        if q:
            out[i] = index.get_scores(q)
    return out


def levenshtein_to_all(query: list[int], docs: DocTokenMatrix, lengths: np.ndarray) -> np.ndarray:
    """Token edit distance of one query to every (padded, pad = -1) document, vectorised over documents.

    Row recursion d_i[j] = min(d_{i-1}[j] + 1, d_{i-1}[j-1] + cost, d_i[j-1] + 1); the left dependency is a
    running minimum: d_i[j] = j + cummin_k<=j (t[k] - k) with t the first two terms.
    """
    n, width = docs.shape
    cols = np.arange(width + 1)
    prev = np.broadcast_to(cols, (n, width + 1)).astype(np.int64)
    for i, tok in enumerate(query, 1):
        cost = (docs != tok).astype(np.int64)
        t = np.empty_like(prev)
        t[:, 0] = i
        t[:, 1:] = np.minimum(prev[:, 1:] + 1, prev[:, :-1] + cost)
        prev = np.minimum.accumulate(t - cols, axis=1) + cols
    return prev[np.arange(n), lengths]


def edit_distance_scores(queries: list[list[int]], docs: list[list[int]]) -> ScoreMatrix:
    """Similarity 1 - levenshtein(q, z) / max(|q|, |z|) over token ids (1 = identical sequences)."""
    lengths = np.array([len(d) for d in docs])
    padded = np.full((len(docs), max(lengths.max(initial=0), 1)), -1, dtype=np.int64)
    for i, d in enumerate(docs):
        padded[i, : len(d)] = d
    out = np.zeros((len(queries), len(docs)))
    for qi, q in enumerate(queries):
        dist = levenshtein_to_all(list(q), padded, lengths)
        out[qi] = 1.0 - dist / np.maximum(np.maximum(lengths, len(q)), 1)
    return out


def random_scores(n_queries: int, n_docs: int, seed: int) -> ScoreMatrix:
    """Uniform scores from a seeded generator (same seed, same scores)."""
    return np.random.default_rng(seed).random((n_queries, n_docs))
