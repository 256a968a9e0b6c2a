"""`mine` pure functions: hand-computed statistics on a 5-token vocabulary, orderings, filters, NMF."""

from __future__ import annotations

import pytest
import torch

from modeldiff_cli.commands.mine.nmf import choose_backend, fit_topics, sparse_matrix
from modeldiff_cli.commands.mine.orderings import make_ordering, ordering_values
from modeldiff_cli.commands.mine.payload import split_budget
from modeldiff_cli.commands.mine.stats import TokenStats, TopKRecords, update
from modeldiff_cli.core.data.token_views import token_view

# 3 positions x 5 tokens; diff = ft - base
DIFF = torch.tensor([
    [2.0, -1.0, 0.5, 0.0, -3.0],
    [1.0, 3.0, -0.5, -2.0, 0.0],
    [-1.0, 0.5, 4.0, -0.1, -0.2],
])
RAW = ["<|pad|>", "ĠCake", "Ġcake", "!!", "Ċ"]


def _stats(k=2, rows=DIFF):
    s = TokenStats(5, k)
    update(s, rows.clone(), positions=torch.tensor([0, 1, 2]))
    return s


def test_hand_computed_statistics():
    s = _stats()
    assert s.total_positions == 3
    torch.testing.assert_close(s.sum_diff, torch.tensor([2.0, 2.5, 4.0, -2.1, -3.2], dtype=torch.float64))
    assert s.count_positive.tolist() == [2, 2, 2, 0, 0]
    # top-2 positive per row: {0, 2}, {1, 0}, {2, 1}
    assert s.count_topk_pos.tolist() == [2, 2, 2, 0, 0]
    # top-2 negative (< 0) per row: {4, 1}, {3, 2}, {0, 4}
    assert s.count_topk_neg.tolist() == [1, 1, 1, 1, 2]
    assert s.position_hist[2].tolist()[:3] == [1, 0, 1]


def test_topk_only_counts_strictly_positive_and_chunks_merge():
    s = _stats(k=4)
    # row 0 top-4 largest: 2, 0.5, 0.0, -1 -> only 2 and 0.5 are > 0
    assert s.count_topk_pos.tolist() == [2, 2, 2, 0, 0]
    m = TokenStats(5, 2)  # two chunks folded into one accumulator = one pass over both
    update(m, DIFF[:1].clone(), torch.tensor([0]))
    update(m, DIFF[1:].clone(), torch.tensor([1, 2]))
    whole = TokenStats(5, 2)
    update(whole, DIFF.clone(), torch.tensor([0, 1, 2]))
    for name in ("count_positive", "count_topk_pos", "count_topk_neg", "position_hist"):
        assert torch.equal(getattr(m, name), getattr(whole, name)), name
    assert m.total_positions == 3 and torch.equal(m.count_topk_pos, whole.count_topk_pos)
    assert torch.equal(m.count_positive, whole.count_positive) and torch.allclose(m.sum_diff, whole.sum_diff)


def test_records_keep_topk_positive_values():
    rec = TopKRecords()
    update(TokenStats(5, 2), DIFF.clone(), records=rec)
    ids, vals = rec.stacked()
    assert ids.shape == (3, 2) and ids.dtype == torch.int32
    assert sorted(vals[2].tolist()) == [0.5, 4.0]


def test_orderings_and_display_filters_consolidation():
    s = _stats()
    torch.testing.assert_close(ordering_values(s, "top-k-occurring"), torch.tensor([200 / 3, 200 / 3, 200 / 3, 0, 0], dtype=torch.float64))
    view = token_view(RAW, {0}, drop_punctuation=True, drop_special=True, consolidate_case=False)
    assert view.strings == ["<|pad|>", " Cake", " cake", "!!", "\n"]
    assert view.keep.tolist() == [False, True, True, False, False]
    o = make_ordering("fraction-positive-diff", "d", s, view, top_n=10)
    assert len(o["tokens"]) == 2  # pad, '!!' and newline filtered out
    assert [t["token_str"] for t in o["tokens"][:2]] == [" Cake", " cake"]
    assert o["tokens"][0]["avg_logit_diff"] == 2.5 / 3 and o["metadata"]["drop_punctuation"] is True
    merged = make_ordering("top-k-occurring", "d", s, token_view(RAW, {0}, drop_punctuation=True, drop_special=True,
                                                                   consolidate_case=True), top_n=10)
    top = merged["tokens"][0]
    assert sorted(top["merged_token_ids"]) == [1, 2] and top["count_positive"] == 4
    assert abs(top["ordering_value"] - 400 / 3) < 1e-9 and len(merged["tokens"]) == 1
    kept_all = make_ordering("top-k-occurring", "d", s, token_view(RAW, set(), drop_punctuation=False,
                                                                     drop_special=False, consolidate_case=False), 10)
    assert [t["token_id"] for t in kept_all["tokens"]][:3] == [0, 1, 2]


@pytest.fixture
def one_thread():
    """Tiny matrices: one intra-op thread avoids thread hand-offs on the shared cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_nmf_deterministic_and_separates_topics(one_thread):
    # two disjoint groups of tokens co-occur: positions 0-49 promote {0,1,2}, 50-99 promote {5,6,7}
    ids = torch.tensor([[0, 1, 2]] * 50 + [[5, 6, 7]] * 50, dtype=torch.int32)
    vals = torch.ones(100, 3)
    m, tok = sparse_matrix(ids, vals, None, "binary")
    assert tok.tolist() == [0, 1, 2, 5, 6, 7]
    for beta in (1.0, 2.0):
        a = fit_topics(m, tok, topics=2, beta=beta, orthogonal=0.0, seed=3, max_iter=200, backend="sparse")
        b = fit_topics(m, tok, topics=2, beta=beta, orthogonal=0.0, seed=3, max_iter=200, backend="sparse")
        assert torch.equal(a.weights, b.weights) and torch.equal(a.loadings, b.loadings)
        tops = {frozenset(tok[a.weights[t].topk(3).indices].tolist()) for t in range(2)}
        assert tops == {frozenset({0, 1, 2}), frozenset({5, 6, 7})}
        assert abs(float(a.cosine[0, 1])) < 0.05 and abs(float(a.mass.sum()) - 1) < 1e-5
    c = fit_topics(m, tok, topics=2, beta=2.0, orthogonal=0.5, seed=3)
    assert torch.allclose(c.weights.sum(1), torch.ones(2))


def _planted(n=240, seed=0):
    """Positions cycle over 3 planted token groups, each plus one random noise token from 30..59."""
    g = torch.Generator().manual_seed(seed)
    groups = torch.tensor([[0, 1, 2, 3], [10, 11, 12, 13], [20, 21, 22, 23]], dtype=torch.int32)
    noise = torch.randint(30, 60, (n, 1), generator=g, dtype=torch.int32)
    ids = torch.cat([groups[torch.arange(n) % 3], noise], 1)
    return ids, torch.rand(ids.shape, generator=g) + 0.1


@pytest.mark.parametrize("mode, beta", [("magnitude", 1.0), ("binary", 2.0)])
def test_nmf_backends_agree(one_thread, mode, beta):
    m, tok = sparse_matrix(*_planted(), None, mode)
    kw = dict(topics=3, beta=beta, orthogonal=0.0, seed=0)
    # same seeded start, 30 updates each (no early stop): the factor matrices agree to float32 rounding
    a = fit_topics(m, tok, **kw, max_iter=30, tol=float("-inf"), backend="torchnmf")
    b = fit_topics(m, tok, **kw, max_iter=30, tol=float("-inf"), backend="sparse")
    assert (a.backend, b.backend, a.iterations, b.iterations) == ("torchnmf", "sparse", 30, 30)
    torch.testing.assert_close(a.weights, b.weights, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a.loadings, b.loadings, rtol=1e-4, atol=1e-4 * float(a.loadings.max()))
    # default stopping rule: same iteration count, and each planted group is its own topic with both backends
    a = fit_topics(m, tok, **kw, max_iter=200, backend="torchnmf")
    b = fit_topics(m, tok, **kw, max_iter=200, backend="sparse")
    assert a.iterations == b.iterations < 200
    for t in (a, b):
        tops = {frozenset(tok[t.weights[i].topk(4).indices].tolist()) for i in range(3)}
        assert tops == {frozenset({0, 1, 2, 3}), frozenset({10, 11, 12, 13}), frozenset({20, 21, 22, 23})}


def test_nmf_torchnmf_deterministic_per_seed_and_auto_choice(one_thread):
    m, tok = sparse_matrix(*_planted(), None, "binary")
    runs = [fit_topics(m, tok, topics=3, beta=1.0, orthogonal=0.0, seed=s, max_iter=20, backend="torchnmf")
            for s in (5, 5, 6)]
    assert torch.equal(runs[0].weights, runs[1].weights) and torch.equal(runs[0].loadings, runs[1].loadings)
    assert not torch.equal(runs[0].loadings, runs[2].loadings)
    assert fit_topics(m, tok, topics=3, beta=2.0, orthogonal=0.0, seed=0, max_iter=5).backend == "torchnmf"
    assert fit_topics(m, tok, topics=3, beta=2.0, orthogonal=0.0, seed=0, max_iter=5, budget=100).backend == "sparse"
    assert fit_topics(m, tok, topics=3, beta=2.0, orthogonal=0.3, seed=0, max_iter=5).backend == "sparse"
    assert choose_backend("auto", (1000, 4000), 0.0) == "torchnmf"
    assert choose_backend("auto", (100_000, 49_000), 0.0) == "sparse"
    assert choose_backend("auto", (10, 10), 0.1) == "sparse" and choose_backend("torchnmf", (10**6, 10**5), 0.0) == "torchnmf"
    with pytest.raises(ValueError):
        fit_topics(m, tok, topics=3, beta=2.0, orthogonal=0.3, seed=0, backend="torchnmf")


@pytest.mark.parametrize("args, needle", [
    (["--nmf-backend", "gpu"], "--nmf-backend"),
    (["--nmf-backend", "torchnmf", "--nmf-orthogonal", "0.5"], "--nmf-orthogonal"),
])
def test_nmf_backend_flag_rejects_bad_values(cli, tmp_path, args, needle):
    code, _, err = cli("mine", "--out", tmp_path, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]


def test_budget_split():
    assert split_budget(10, 3) == [4, 3, 3] and sum(split_budget(7, 2)) == 7


def test_nmf_options_split_runs_only_with_the_nmf_ordering():
    """The run's configuration (its directory hash) holds the NMF options only when NMF runs."""
    from modeldiff_cli.commands.mine.command import Mine

    plain = dict(orderings="top-k-occurring")
    assert Mine.make(**plain).config() == Mine.make(**plain, nmf_topics=9).config()
    assert not any(k.startswith("nmf_") for k in Mine.make(**plain).settings())
    with_nmf = dict(orderings="top-k-occurring,nmf")
    assert Mine.make(**with_nmf).config() != Mine.make(**with_nmf, nmf_topics=9).config()
    assert Mine.make(**with_nmf).settings()["nmf_topics"] == 5
