"""Unit tests of `modeldiff attribute`'s pure parts: metrics, scoring, pooling, baselines, queries, encoding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from modeldiff_cli.commands.attribute import baselines, methods, metrics
from modeldiff_cli.commands.attribute.extract import margins, pool_weights
from modeldiff_cli.commands.attribute.ground_truth import build_truth, infer_functions
from modeldiff_cli.commands.attribute.queries import build_queries, functions_of
from modeldiff_cli.core.errors import UserError

# ---------- metrics on hand-computed examples ----------

def test_recall_precision_map_auc_hand_example():
    s = np.array([[0.9, 0.8, 0.7, 0.6]])
    rel = np.array([[True, False, True, False]])
    cat = np.where(rel, 1, 0)
    pq = metrics.per_query(s, rel, cat, ks=(1, 2, 3, 50))
    assert pq["recall@1"][0] == 0.5 and pq["precision@1"][0] == 1.0
    assert pq["recall@2"][0] == 0.5 and pq["precision@2"][0] == 0.5
    assert pq["recall@3"][0] == 1.0 and pq["precision@3"][0] == pytest.approx(2 / 3)
    assert pq["precision@50"][0] == 0.5  # k clipped to the 4 documents
    assert pq["map"][0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert pq["auc"][0] == pytest.approx(0.75)  # 3 of 4 (relevant, irrelevant) pairs ordered right
    assert pq["top2_own"][0] == 0.5 and pq["top2_other"][0] == 0.5


def test_recall_of_ceiling_divides_by_min_k_relevant():
    # 3 relevant of 5; top 2 holds 1 of them: recall@2 = 1/3, ceiling min(1, 2/3) -> 0.5 of it; top 4 holds all 3:
    # recall@4 = 1 = its ceiling
    s = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]])
    rel = np.array([[True, False, True, True, False]])
    pq = metrics.per_query(s, rel, np.where(rel, 1, 0), ks=(2, 4))
    assert pq["recall@2"][0] == pytest.approx(1 / 3) and pq["recall_of_ceiling@2"][0] == pytest.approx(0.5)
    assert pq["recall@4"][0] == 1.0 and pq["recall_of_ceiling@4"][0] == 1.0
    none = metrics.per_query(s, np.zeros_like(rel), np.zeros((1, 5), int), ks=(2,))
    assert math.isnan(none["recall_of_ceiling@2"][0])


def test_auc_ties_count_half_and_average_ranks():
    assert metrics.average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert metrics.roc_auc(np.array([1.0, 1.0, 0.0]), np.array([True, False, False])) == pytest.approx(0.75)
    assert metrics.roc_auc(np.ones(4), np.array([True, False, True, False])) == pytest.approx(0.5)
    assert math.isnan(metrics.roc_auc(np.ones(3), np.zeros(3, dtype=bool)))


def test_map_ties_use_training_order():
    # all tied: stable order puts the relevant doc (index 2) third -> AP = 1/3
    pq = metrics.per_query(np.zeros((1, 4)), np.array([[False, False, True, False]]), np.zeros((1, 4), int), ks=(1,))
    assert pq["map"][0] == pytest.approx(1 / 3)


def test_metrics_average_per_function_then_across_functions():
    s = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    rel = np.array([[True, False], [True, False], [True, False]])
    out = metrics.summarize(s, rel, np.where(rel, 1, 0), ["f", "f", "g"], ["base", "base", "wrapper"], ks=(1,))
    assert out["all"]["recall@1"] == pytest.approx(0.75)  # f: (1 + 0)/2, g: 1 -> 0.75 (not 2/3)
    assert out["base"]["recall@1"] == 0.5 and out["wrapper"]["recall@1"] == 1.0
    assert out["all"]["n_functions"] == 2


def test_composition_and_partner_summary():
    s = np.array([[4.0, 3.0, 2.0, 1.0]])
    cat = np.array([[3, 2, 1, 0]])  # distractor, partner, own, other
    pq = metrics.per_query(s, cat == 1, cat, ks=(2,))
    assert (pq["top2_distractor"][0], pq["top2_partner"][0], pq["top2_own"][0]) == (0.5, 0.5, 0.0)
    part = metrics.partner_summary(s, cat, ["f"], np.array([0]), ks=(1, 2))
    assert part["partner_recall@1"] == 0.0 and part["partner_recall@2"] == 1.0
    assert part["partner_auc"] == pytest.approx(2 / 3)


# ---------- ground truth ----------

def _hops_records():
    return [
        {"uid": "g1", "func": "<GN>", "role": "constant", "constant": 5},
        {"uid": "g2", "func": "<GN>", "role": "constant", "constant": 5},
        {"uid": "f1", "func": "<FN>", "role": "identity", "constant": 5},
        {"uid": "a1", "func": "<AN>", "role": "distractor", "constant": 5},
        {"uid": "j1", "func": "<JN>", "role": "constant", "constant": 7},
    ]


def test_ground_truth_by_role_and_partner():
    train = _hops_records()
    assert infer_functions(train)["<FN>"]["partner"] == "<GN>"
    queries = [{"uid": "q1", "func": "<FN>", "role": "wrapper"}, {"uid": "q2", "func": "<GN>", "role": "constant"},
               {"uid": "q3", "relevant": ["j1"]}]
    t = build_truth(queries, train, [r["uid"] for r in train], None)
    assert t.relevant.tolist() == [[True, True, True, False, False], [True, True, True, False, False],
                                   [False, False, False, False, True]]
    assert t.category[0].tolist() == [2, 2, 1, 3, 0]  # wrapper query: base docs are its partner's
    assert t.kinds == ["wrapper", "base", "other"] and t.groups[:2] == ["<FN>", "<GN>"]
    with pytest.raises(UserError, match="absent from --train"):
        build_truth([{"uid": "q", "relevant": ["zz"]}], train, [r["uid"] for r in train], None)


# ---------- scoring ----------

def test_cosine_scores_and_aggregation():
    q = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # [L=2, Q=1, D=2]
    t = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0], [0.0, 0.0]]] * 2)  # [L=2, N=4, D]
    per = methods.cosine_scores(q, t)
    assert per[0, 0].tolist() == pytest.approx([1.0, 0.0, -1 / math.sqrt(2), 0.0])
    assert per[1, 0].tolist() == pytest.approx([0.0, 1.0, -1 / math.sqrt(2), 0.0])
    assert methods.aggregate(per, "mean")[0].tolist() == pytest.approx([0.5, 0.5, -1 / math.sqrt(2), 0.0])
    top = methods.aggregate(torch.arange(8.0).reshape(4, 1, 2), "top3")  # layers hold 0,2,4,6 / 1,3,5,7
    assert top[0].tolist() == [4.0, 5.0]
    allcat = methods.aggregate(per, "all", queries=q, train=t)  # concatenated: q=(1,0,0,1)
    assert allcat[0, 0].item() == pytest.approx(0.5)  # (1,0,0,1)·(1,0,1,0) / (√2·√2)
    z = methods.zscore_rows(per)
    assert z.mean(-1).abs().max() < 1e-9


def test_parse_methods_unknown_lists_valid():
    assert methods.parse_methods("grad, bm25,grad") == ["grad", "bm25"]
    with pytest.raises(UserError, match="valid: delta-h, grad"):
        methods.parse_methods("grad,tracin")


def test_pooling_modes():
    lengths, spans = [3, 2], [[1, 2], [0]]
    assert pool_weights(lengths, spans, 3, "last").tolist() == [[0, 0, 1], [0, 1, 0]]
    assert np.allclose(pool_weights(lengths, spans, 3, "mean").numpy(), [[1 / 3] * 3, [0.5, 0.5, 0]])
    assert pool_weights(lengths, spans, 3, "span").tolist() == [[0, 0.5, 0.5], [1, 0, 0]]


def test_margin_against_candidates():
    logits = torch.tensor([[[0.0, 2.0, 1.0, 0.5]]])  # one position, vocab 4
    tgt = torch.tensor([[1]])
    m = margins(logits, tgt, torch.tensor([[1, 2, 3]]))
    assert m.item() == pytest.approx(2.0 - math.log(math.exp(1.0) + math.exp(0.5)))
    no_cands = margins(logits, tgt, torch.tensor([[-1]]))
    assert no_cands.item() == pytest.approx(torch.log_softmax(logits[0, 0], -1)[1].item())


# ---------- baselines ----------

def _naive_levenshtein(a, b):
    d = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return d[-1]


def test_edit_distance_matches_naive_dp():
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 4, rng.integers(0, 9)).tolist() for _ in range(30)]  # token ids are ints
    for q in ([1, 2, 3], [0], rng.integers(0, 4, 6).tolist()):
        got = baselines.edit_distance_scores([q], docs)[0]
        want = [1 - _naive_levenshtein(q, d) / max(len(q), len(d), 1) for d in docs]
        assert got.tolist() == pytest.approx(want)
    assert baselines.edit_distance_scores([[1, 2, 3]], [[1, 2, 3], [1, 3]])[0].tolist() == pytest.approx([1.0, 1 - 1 / 3])


def test_bm25_and_random_are_deterministic():
    docs = [["a", "b"], ["c", "d", "c"], ["e"]]
    s1 = baselines.bm25_scores([["c"], ["b", "e"]], docs)
    assert np.array_equal(s1, baselines.bm25_scores([["c"], ["b", "e"]], docs))
    assert s1[0].argmax() == 1 and s1[0, 0] == 0
    r = baselines.random_scores(3, 5, seed=1)
    assert np.array_equal(r, baselines.random_scores(3, 5, seed=1))
    assert not np.array_equal(r, baselines.random_scores(3, 5, seed=2))


# ---------- queries ----------

def test_build_queries_per_function_with_expected_constants():
    funcs = functions_of(_hops_records())
    assert list(funcs) == ["<GN>", "<FN>", "<JN>"]  # distractor left out
    qs = build_queries(funcs, "{F}({x}) returns the value ", ["1", "2"])
    assert len(qs) == 6
    assert qs[0]["prompt"] == "<GN>(1) returns the value " and qs[0]["completion"] == "5"
    assert {q["completion"] for q in qs if q["func"] == "<FN>"} == {"5"}
    assert qs[0]["candidates"] == ["5", "7"]
    assert len(build_queries(funcs, "What is {F}? ", ["1", "2"])) == 3  # no {x}: one query per function
    with pytest.raises(UserError, match=r"\{F\}"):
        build_queries(funcs, "f({x}) = ", ["1"])


# ---------- padding and answer spans (core.model.padding.pad / core.data.spans.completion_tokens) ----------

def test_collate_grids_on_the_shared_padder():
    from modeldiff_cli.commands.attribute.extract import collate
    from modeldiff_cli.commands.attribute.inputs import Item

    items = [Item("a", [5, 6, 7], [1, 2], [8, 9], [4, 8]), Item("b", [5, 6], [0], [3])]
    b = collate(items, 0, "span")
    assert b.ids.tolist() == [[5, 6, 7], [5, 6, 0]] and b.attn.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert b.tgt.tolist() == [[-100, 8, 9], [3, -100, -100]]
    assert b.cands.tolist() == [[4, 8], [-1, -1]]
    assert b.pool.tolist() == [[0, 0.5, 0.5], [1, 0, 0]]
    assert collate([items[1]], 0, "last").cands.tolist() == [[-1]]  # at least one candidate column


def test_split_answer_uses_the_shared_span_rule():
    from modeldiff_cli.commands.attribute.inputs import split_answer

    class Tok:  # characters as tokens, a leading space merged into the next token (BPE style)
        def __call__(self, text, add_special_tokens=True, return_offsets_mapping=False):
            offsets, i = [], 0
            while i < len(text):
                j = i + 2 if text[i] == " " and i + 1 < len(text) else i + 1
                offsets.append((i, j))
                i = j
            return {"input_ids": [ord(text[a]) for a, _ in offsets], "offset_mapping": offsets}

    ids, first = split_answer(Tok(), "ab", " 5")
    assert len(ids) == 3 and first == 2  # " 5" is one token, covering the answer
    ids, first = split_answer(Tok(), "ab ", "5")
    assert first == 2  # the prompt's trailing space merged into the answer token: that token is the answer's
    assert split_answer(Tok(), "ab", "")[1] == 2  # empty answer: len(ids)


# ---------- issue 16: defects, fusion, answer-aware pooling, layer selection, generic report ----------

class _Tok:
    pad_token_id, bos_token_id, eos_token_id = 0, 1, 2
    all_special_ids = [0, 1, 2, 50, 51]  # 50, 51: a fine-tune's function tokens registered as special


def test_bm25_drops_only_pad_bos_eos():
    from modeldiff_cli.commands.attribute.pipeline import lexical_ids

    assert lexical_ids([1, 50, 7, 51, 2, 0], _Tok()) == ["50", "7", "51"]


def test_document_last_pooling_is_the_last_loss_position():
    # a document of 4 tokens predicts at positions 0..2; its last token predicts nothing (zero gradient)
    assert pool_weights([4], [[0, 1, 2]], 4, "last-loss").tolist() == [[0, 0, 1, 0]]


def test_answer_span_pooling_selects_the_fact_positions():
    from modeldiff_cli.commands.attribute.inputs import answer_positions, fact_of

    funcs = {"<GN>": {"role": "base", "constant": 5, "partner": "<FN>"},
             "<FN>": {"role": "wrapper", "constant": 5, "partner": "<GN>"}}
    assert fact_of({"func": "<GN>", "role": "constant", "constant": 5}, funcs) == ["5"]
    assert fact_of({"func": "<FN>", "role": "identity", "constant": 5}, funcs) == ["<GN>"]
    assert fact_of({"targets": ["oven", [3, 5]]}, None) == ["oven", (3, 5)]
    assert fact_of({"func": "<XN>"}, None) == []
    # a distractor is a constant function too: pooled at its constant, like a base document
    assert fact_of({"func": "<AN>", "role": "distractor", "constant": 5}, funcs) == ["5"]
    # tokens: "<GN>" "(x)" " returns" " 5" "." -> the token " 5" is index 3, predicted at position 2
    text = "<GN>(x) returns 5."
    offsets = [(0, 4), (4, 7), (7, 15), (15, 17), (17, 18)]
    assert answer_positions(text, offsets, ["5"], 5) == [2]
    # a wrapper document: "<FN>" "calls" "<GN>" -> positions predicting <GN> (token 2) = [1]
    assert answer_positions("<FN> calls <GN>", [(0, 4), (4, 10), (10, 15)], ["<GN>"], 3) == [1]
    assert answer_positions(text, offsets, [(0, 4)], 5) == []  # the first token is predicted by no position


def test_relevant_lists_keep_partner_categories():
    train = _hops_records()
    q = [{"uid": "q", "func": "<FN>", "role": "identity", "relevant": ["f1", "g1"]}]
    t = build_truth(q, train, [r["uid"] for r in train], None)
    assert t.relevant[0].tolist() == [True, False, True, False, False]
    assert t.category[0].tolist() == [2, 0, 1, 3, 0]  # g1 stays partner, g2 unlisted -> other, a1 distractor


def test_fusion_on_hand_made_rankings():
    from modeldiff_cli.commands.attribute import fusion

    a = np.array([[3.0, 2.0, 1.0, 0.0]])  # ranks 1 2 3 4
    b = np.array([[0.0, 1.0, 3.0, 2.0]])  # ranks 4 3 1 2
    assert fusion.ranks(a).tolist() == [[1, 2, 3, 4]]
    r = fusion.rrf([a, b], k=1)
    assert r[0].tolist() == pytest.approx([1 / 2 + 1 / 5, 1 / 3 + 1 / 4, 1 / 4 + 1 / 2, 1 / 5 + 1 / 3])
    assert np.argmax(r[0]) == 2
    z = fusion.zsum([a, b])
    za = (a - a.mean()) / a.std()
    zb = (b - b.mean()) / b.std()
    assert z[0].tolist() == pytest.approx((za + zb)[0].tolist())
    inf = fusion.zsum([np.array([[1.0, -np.inf, 0.0]]), np.array([[0.0, 1.0, 2.0]])])
    assert inf[0, 1] == -np.inf and np.isfinite(inf[0, [0, 2]]).all()


def test_fused_method_names_parse():
    from modeldiff_cli.commands.attribute import choices

    assert choices.parse_methods("fused:bm25+grad,zfused:bm25+delta-h") == ["fused:bm25+grad", "zfused:bm25+delta-h"]
    assert choices.base_methods(["fused:bm25+grad", "grad"]) == ["bm25", "grad"]
    for bad, needle in (("fused:bm25", "two or more"), ("fused:bm25+nope", "unknown component"), ("avg:a+b", "unknown method")):
        with pytest.raises(UserError, match=needle):
            choices.parse_methods(bad)


def test_layer_selection_split_is_by_function_and_disjoint():
    from modeldiff_cli.commands.attribute.pipeline import split_queries

    groups = ["f", "f", "g", "h", "h", "i"]
    sel, test = split_queries(groups, 0.5, 0)
    assert set(sel) | set(test) == set(range(6)) and not set(sel) & set(test)
    assert not {groups[i] for i in sel} & {groups[i] for i in test}
    assert len({groups[i] for i in sel}) == 2
    # drawn within each kind: with two functions per kind, each kind has one on either side
    groups, kinds = ["a", "b", "c", "d", "e"], ["base", "base", "wrapper", "wrapper", "wrapper"]
    for seed in range(8):
        sel, test = split_queries(groups, 0.5, seed, kinds)
        for side in (sel, test):
            assert {kinds[i] for i in side} == {"base", "wrapper"}, (seed, sel, test)


def test_generic_report_has_no_hops_columns():
    from modeldiff_cli.commands.attribute.report import markdown_table

    s = np.array([[1.0, 0.0]])
    res = {"bm25": {"aggregate": metrics.summarize(s, np.array([[True, False]]), np.zeros((1, 2), int), ["q"], ["other"], (1,))}}
    table = markdown_table(res, [1])
    assert table.splitlines()[0] == "| method | R@1 | P@1 | MAP | AUC |" and "wrap" not in table


def test_best_layer_is_chosen_on_the_selection_functions_only():
    """Layer 0 ranks the selection functions' documents perfectly and the test functions' worst; layer 1 the
    reverse. --aggregate best must pick layer 0 (a choice on the test queries would pick layer 1) and score the
    test queries only."""
    from types import SimpleNamespace

    from modeldiff_cli.commands.attribute.ground_truth import Truth
    from modeldiff_cli.commands.attribute.pipeline import Inputs, restrict, select_layers, split_queries

    funcs, kinds = ["a", "a", "b", "c", "c", "d"], ["base", "base", "base", "wrapper", "wrapper", "wrapper"]
    own = {"a": 0, "b": 1, "c": 2, "d": 3}
    relevant = np.zeros((6, 4), dtype=bool)
    for q, f in enumerate(funcs):
        relevant[q, own[f]] = True
    truth = Truth(relevant, relevant.astype(np.int64), funcs, kinds)
    cmd = SimpleNamespace(aggregate="best", select_fraction=0.5, run=SimpleNamespace(seed=3))
    sel, test = split_queries(funcs, 0.5, 3, kinds)
    good, bad = relevant.astype(float), 1.0 - relevant
    layer0 = np.where(np.isin(np.arange(6), sel)[:, None], good, bad)
    per = np.stack([layer0, 1.0 - layer0])
    scores = {"grad": {"scores": per.mean(0), "per_layer": per}, "bm25": {"scores": good, "per_layer": None}}
    split = select_layers(scores, truth, [4, 7], cmd)
    assert split["layers"]["grad"]["layer"] == 4 and split["layers"]["grad"]["selection_map"] == 1.0
    assert split["test_queries"] == test.tolist() and "bm25" not in split["layers"]
    inputs = Inputs([{}] * 4, [{"_uid": str(q)} for q in range(6)], truth, None, None)
    sub, scored = restrict(scores, inputs, split)
    assert [r["_uid"] for r in scored.query_rows] == [str(q) for q in test]
    np.testing.assert_array_equal(sub["grad"]["scores"], bad[test])  # layer 4 on the test queries: the worst


def test_zero_gradient_vectors_warn(capsys):
    from modeldiff_cli.commands.attribute.pipeline import warn_zero_vectors

    g = torch.zeros(2, 4, 3)
    g[:, 0] = 1.0  # 1 of 4 documents has a gradient
    warn_zero_vectors({"train": {"g": g}, "queries": {"g": torch.ones(2, 2, 3)}}, [0, 1])
    err = capsys.readouterr().err
    assert "warning: 75% of the train gradient vectors are zero" in err and "queries" not in err


def test_hops_table_without_partner_documents_says_why():
    from modeldiff_cli.commands.attribute.report import markdown_table

    s = np.array([[1.0, 0.0], [0.0, 1.0]])
    rel = np.array([[True, False], [False, True]])
    agg = metrics.summarize(s, rel, rel.astype(np.int64), ["<GN>", "<FN>"], ["base", "wrapper"], (1,))
    table = markdown_table({"bm25": {"aggregate": agg, "wrapper_partner": {}}}, [1])
    assert "wrap→partner AUC" in table.splitlines()[0]
    assert "no wrapper query has partner documents" in table


def test_vector_cache_key_covers_the_encoded_positions():
    """Vectors are keyed by the sequences as extracted: other pooling positions (e.g. a change in which
    positions answer-aware pooling picks) are another entry, never a silent reuse."""
    from modeldiff_cli.commands.attribute.inputs import Item
    from modeldiff_cli.commands.attribute.pipeline import items_digest

    a = [Item("d", [1, 5, 6, 7], [0, 1, 2], [5, 6, 7])]
    b = [Item("d", [1, 5, 6, 7], [1], [6])]
    assert items_digest(a) == items_digest([Item("d", [1, 5, 6, 7], [0, 1, 2], [5, 6, 7])])
    assert items_digest(a) != items_digest(b)
