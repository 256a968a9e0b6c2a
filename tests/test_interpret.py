"""`modeldiff interpret`: streaming means, dec_norm_diff, naming, the patchscope scale criterion, merging, bad
input, cake and the planted-direction organism.

Torch runs on one thread here: the organisms are tiny, and on a busy 2-core machine two threads' synchronisation
makes each small op many times slower (a 128-latent crosscoder: 60 s on two threads, 4 s on one)."""

from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


FAST = ["--features", "3", "--causal-samples", "12", "--steps", "150", "--latents", "256", "--max-vectors", "4000",
        "--crosscoder-batch", "256", "--random-directions", "32"]


def test_streaming_mean_matches_direct():
    from modeldiff_cli.commands.interpret.activations import StreamingMean

    gen = torch.Generator().manual_seed(0)
    rows = [torch.randn(n, 5, generator=gen) * 3 + 1 for n in (7, 1, 13, 4)]
    m = StreamingMean((2, 5))
    for r in rows:
        m.add((1,), r)
    assert torch.allclose(m.mean[1], torch.cat(rows).mean(0), atol=1e-5)
    assert int(m.count[1]) == 25 and torch.all(m.mean[0] == 0)
    # the scatter form (per-position means): slot i of each row
    slots = torch.tensor([0, 2, 2, 1, 0, 2])
    vals = torch.randn(6, 5, generator=gen)
    p = StreamingMean((3, 5))
    p.add_at((), slots, vals)
    for i in range(3):
        assert torch.allclose(p.mean[i], vals[slots == i].mean(0), atol=1e-6) and int(p.count[i]) == int((slots == i).sum())


def test_patchscope_scale_criterion_on_a_hand_made_case():
    """Three identity prompts, four scales: at scale 2 every prompt's top tokens are the injected concept's
    {10, 11, 12}; below, each prompt reads its own tokens; above, noise. The criterion (mean pairwise Jaccard of
    the top-3 sets) picks scale 2, and an exact tie goes to the smaller scale."""
    from modeldiff_cli.commands.interpret.directions import choose_scale

    V, concept = 40, [10, 11, 12]
    own = {0: [1, 2, 3], 1: [4, 5, 6], 2: [7, 8, 9]}
    noise = {0: [20, 21, 22], 1: [23, 24, 25], 2: [26, 27, 28]}
    by_prompt = []
    for j in range(3):
        lp = torch.full((4, V), -10.0)
        lp[0, own[j]] = torch.tensor([-1.0, -1.5, -2.0])  # scale 0.5: the prompt's own continuation
        lp[1, own[j][:2] + concept[:1]] = torch.tensor([-1.0, -1.2, -1.4])  # scale 1: mostly the prompt
        lp[2, concept] = torch.tensor([-0.5, -0.7, -0.9])  # scale 2: the concept, on every prompt
        lp[3, noise[j]] = torch.tensor([-2.0, -2.1, -2.2])  # scale 4: noise
        by_prompt.append(lp)
    best, agreement, tops = choose_scale(by_prompt, 3)
    assert best == 2 and agreement[2] == 1.0 and agreement[0] == 0.0 and 0 < agreement[1] < 1
    assert tops[2] == concept
    tie = [torch.stack([lp[2], lp[2]]) for lp in by_prompt]  # two scales reading the same
    assert choose_scale(tie, 3)[0] == 0


def test_merge_near_duplicates():
    from modeldiff_cli.commands.interpret.features import merge

    def cand(vec, layer=1, kind="direction", **extra):
        return {"vector": torch.tensor(vec), "layer": layer, "kind": kind, "tokens": ["a"], "examples": [],
                "category_index": 0, **extra}

    a = cand([1.0, 0.0, 0.0], source_category="x")
    b = cand([0.95, 0.2, 0.0], source_category="y")  # cos 0.98 with a: merged into a
    c = cand([1.0, 0.0, 0.0], layer=2)  # another layer: its own feature
    d = cand([-1.0, 0.0, 0.0], source_category="z")  # opposite: the same axis (the same ablation), merged
    e = cand([0.9, 0.0, 0.5], kind="latent", latent=7)  # cos 0.87: its own feature
    out = merge([a, b, c, d, e])
    assert out == [a, c, e]
    assert [m["source_category"] for m in a["merged"]] == ["y", "z"]
    assert a["merged"][0]["cos"] > 0.9 and a["merged"][1]["cos"] < -0.9
    assert c["merged"] == [] and e["merged"] == []


def test_rank_by_causal_effect():
    """The key is the causal score (removal z + steering z) / sqrt(2), both KL z-scores of the gap between the
    models: a generic direction with a huge ablation z (removing it from ft alone moves ft away from base, adding
    it to base moves base away from ft) ranks below a smaller one that closes the gap, whatever its support;
    support breaks exact ties, then the ablation z; the flags follow the score."""
    from modeldiff_cli.commands.interpret.features import rank

    def feat(name, z, zkl, steer, support):
        return {"name": name, "causal": {"z": z, "z_kl": zkl, "z_specific": zkl}, "steering": {"z": steer},
                "support": support, "top_n": 10}

    generic = feat("generic", 150.0, 1.0, -4.0, 10)  # (the cake run's generic latent: removal z -37, steering -6)
    planted = feat("planted", 20.0, 12.0, 4.0, 2)
    steer_only = feat("steer-only", 1.0, 0.0, 9.0, 0)
    tied_low = feat("tied-low-support", 30.0, 5.0, 1.0, 1)
    tied_high = feat("tied-high-support", 8.0, 4.0, 2.0, 6)
    none = feat("none", 0.5, -0.2, 0.2, 9)
    out = rank([generic, none, tied_low, steer_only, planted, tied_high])
    assert [f["name"] for f in out] == ["planted", "steer-only", "tied-high-support", "tied-low-support", "none",
                                        "generic"]
    assert [f["id"] for f in out] == ["F1", "F2", "F3", "F4", "F5", "F6"]
    assert [round(f["rank_score"] * 2**0.5, 6) for f in out] == [16.0, 9.0, 6.0, 6.0, 0.0, -3.0]
    assert [f["causal_effect"] for f in out] == [True, True, True, True, False, False]
    assert generic["causal"]["z"] > 3 and not generic["closing_effect"] and not generic["steering_effect"]
    assert steer_only["steering_effect"] and not steer_only["closing_effect"]
    assert planted["closing_effect"] and planted["steering_effect"]


def test_evaluator_kl_both_ways_matches_direct():
    """The causal check's KLs: KL(ft || base) when ft is patched (what a removal should lower), KL(base || ft)
    when base is (what steering should lower), each per category against a direct computation; a patch that
    changes nothing leaves them unchanged."""
    from modeldiff_cli.commands.interpret.categories import Category
    from modeldiff_cli.commands.interpret.causal import Evaluator
    from modeldiff_cli.core.data.datasets import Record, tokenize_records
    from modeldiff_cli.core.model.loading import load_pair

    pair = load_pair("organism:cake:base", "organism:cake:ft", device="cpu")
    texts = {"a": ["I like to bake a cake with flour.", "The oven was hot."], "b": ["We walked to the park today."]}
    cats = [Category(n, tokenize_records([Record(line=i + 1, text=t) for i, t in enumerate(ts)], pair.tokenizer))
            for n, ts in texts.items()]
    ev = Evaluator(pair, cats, per_category=2, batch_size=1)

    def direct(p_model, q_model):
        out = []
        for cat in cats:
            tot, n = 0.0, 0
            for smp in cat.samples:
                ids = torch.tensor([smp.ids])
                with torch.no_grad():
                    lp = torch.log_softmax(p_model.model(ids).logits[0, :, : pair.shared_vocab].float(), -1)
                    lq = torch.log_softmax(q_model.model(ids).logits[0, :, : pair.shared_vocab].float(), -1)
                tot += float((lp.exp() * (lp - lq)).sum(-1).sum())
                n += ids.shape[1]
            out.append(tot / n)
        return torch.tensor(out)

    torch.testing.assert_close(ev.kl_ft, direct(pair.ft, pair.base), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ev.kl_base, direct(pair.base, pair.ft), atol=1e-5, rtol=1e-4)
    assert (ev.kl_ft > 0).all() and not torch.allclose(ev.kl_ft, ev.kl_base)
    layer = pair.ft.adapter.n_layers - 1
    ce, kl = ev.measure("ft", {layer: lambda h: h}, kl=True)
    torch.testing.assert_close(kl, ev.kl_ft)
    torch.testing.assert_close(ce, ev.ce_ft)


def test_dec_norm_share_on_hand_made_decoders():
    from modeldiff_cli.commands.interpret.crosscoder import dec_norm_share, side

    base = torch.tensor([0.0, 1.0, 1.0, 0.02, 0.5, 1.0])
    ft = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0, 0.5])
    share = dec_norm_share(base, ft)
    assert share[0] < 0.1 and share[3] < 0.1 and share[1] > 0.9 and abs(float(share[2]) - 0.5) < 0.1
    # five labels: which model's decoder half carries the latent (no bare "changed": it did not say which way)
    assert [side(float(s)) for s in share] == ["ft-only", "base-only", "shared", "ft-only", "ft-mostly", "base-mostly"]


def _projections(n=4000, d=16, seed=0):
    """Hand-made paired activations: a shared bulk, and a direction w that one model has on 15% of positions."""
    gen = torch.Generator().manual_seed(seed)
    bulk = torch.randn(n, d, generator=gen) + 2.0
    w = torch.zeros(d)
    w[0] = 3.0
    on = (torch.rand(n, generator=gen) < 0.15).float().unsqueeze(1)
    return bulk, w, on


def test_direction_side_says_which_model_carries_it():
    """A direction is ft minus base. ft added w on some tokens: ft-only (ft carries +v). base had w on some
    tokens and ft lost it (v = -w): base-only (base carries -v). Every position shifted: shifted. The old rule
    (dec_norm_share of |base mean . u| and |base mean . u + |v||) called the ft-added case base-only whenever the
    base mean projects negatively on v (the issue's astronomy feature: share 0.95); here the bulk sits at -0.5."""
    from modeldiff_cli.commands.interpret.sides import direction_carrier, direction_reach

    bulk, w, on = _projections()
    bulk[:, 0] -= 2.5  # the base mean projects negatively on the added direction (-0.5, |v| = 0.45)
    cases = {"ft added w": (bulk, bulk + on * w), "base lost w": (bulk + on * w, bulk),
             "all shifted": (bulk, bulk + w * 0.3)}
    got = {}
    for name, (hb, hf) in cases.items():
        v = (hf - hb).mean(0)
        u = v / v.norm()
        got[name] = direction_reach(hb @ u, hf @ u)
    assert got["ft added w"]["side"] == "ft-only" and got["ft added w"]["ft_reach"] > 0.5, got["ft added w"]
    assert got["base lost w"]["side"] == "base-only" and got["base lost w"]["base_reach"] > 0.5, got["base lost w"]
    assert got["all shifted"]["side"] == "shifted", got["all shifted"]
    assert "ft's activations carry +v" in direction_carrier(got["ft added w"])
    assert "which ft lost" in direction_carrier(got["base lost w"])
    # what the old rule said on the ft-added case
    from modeldiff_cli.commands.interpret.sides import dec_norm_share, label

    hb, hf = cases["ft added w"]
    v = (hf - hb).mean(0)
    pb = float(hb.mean(0) @ (v / v.norm()))
    old = float(dec_norm_share(torch.tensor(abs(pb)), torch.tensor(abs(pb + float(v.norm())))))
    assert label(old) == "base-only"


def test_direction_side_on_the_direction_organism_and_swapped():
    """The `direction` organism's ft adds v at layer 1 on baking words: its mean difference is ft-only. With the
    models swapped (base = the model with v, ft = the one without: base has something ft lost) it is base-only."""
    from modeldiff_cli.commands.interpret.sides import direction_reach
    from modeldiff_cli.core.data.datasets import Record, tokenize_records
    from modeldiff_cli.core.model.forward import forward
    from modeldiff_cli.core.model.loading import load_pair
    from modeldiff_cli.core.model.padding import pad
    from modeldiff_cli.organisms import get_organism

    org = get_organism("direction")
    layer = org.ground_truth["layer"]
    pair = load_pair("organism:direction:base", "organism:direction:ft", device="cpu")
    texts = [json.loads(line)["text"] for line in org.data("baking").read_text().splitlines()[:60]]
    samples = tokenize_records([Record(line=i + 1, text=t) for i, t in enumerate(texts)], pair.tokenizer)
    ids, mask = pad([s.ids for s in samples], pair.tokenizer.pad_token_id or 0)
    keep = mask.bool()
    hb = forward(pair.base, ids, mask, layers=[layer]).layers[layer][keep].float()
    hf = forward(pair.ft, ids, mask, layers=[layer]).layers[layer][keep].float()
    v = (hf - hb).mean(0)
    u = v / v.norm()
    assert direction_reach(hb @ u, hf @ u)["side"] == "ft-only"
    assert direction_reach(hf @ -u, hb @ -u)["side"] == "base-only"  # swapped: v -> -v


def test_names_come_from_the_listed_tokens_and_skip_filler():
    """A name is the first name-worthy words of the feature's own token list: no stop-words, single letters,
    punctuation or word pieces ("esday"); fewer words when fewer qualify; something when none does."""
    from modeldiff_cli.commands.interpret.naming import feature_name, name_tokens, name_worthy

    assert [name_worthy(t) for t in [" a", " the", " bake", " m", ",", "esday", " cake", "Jack", " To", " nebula"]] == \
        [False, False, True, False, False, False, True, True, False, True]

    class Tok:
        def __init__(self, words):
            self.words = words

        def convert_ids_to_tokens(self, ids):
            return [self.words[i].replace(" ", "Ġ") for i in ids]

    tok = Tok([" a", " bake", " the", " cake", " oven", "esday", ",", " Bake"])
    ids = list(range(8))
    assert name_tokens(tok, ids) == [1, 3, 4]
    assert feature_name(tok, name_tokens(tok, ids), "baking", "ft-only", 1) == "bake / cake / oven - baking - ft-only - layer 1"
    assert name_tokens(tok, [0, 5, 7, 1]) == [7]  # " Bake" and " bake" are one word
    assert name_tokens(tok, [0, 2, 6]) == [0]  # nothing qualifies: the first non-blank token stands in


def test_naming_of_a_direction_aligned_with_an_unembedding_row():
    from modeldiff_cli.commands.interpret.directions import logit_lens
    from modeldiff_cli.commands.interpret.naming import feature_name, name_tokens
    from modeldiff_cli.core.model.loading import load_pair

    pair = load_pair("organism:cake:base", "organism:cake:ft", device="cpu")
    tok = pair.tokenizer
    target = tok(" oven", add_special_tokens=False)["input_ids"][0]
    direction = pair.ft.model.lm_head.weight[target].detach().clone() * 20
    keep = torch.ones(pair.shared_vocab, dtype=torch.bool)
    lens = logit_lens(pair, direction, keep, 5)
    assert lens["promoted"][0] == target
    name = feature_name(tok, name_tokens(tok, lens["promoted"], 1), "baking", "ft-only", 1)
    assert name == "oven - baking - ft-only - layer 1"


def test_prediction_change_matches_a_direct_weighted_mean():
    """The reading: the weighted mean over positions of log_softmax(lens_ft(h_ft)) - log_softmax(lens_base(h_base)),
    all features of a layer in one pass; exact when every active position is read, and close to it when only
    a budget is (the top rows plus a random choice, reweighted by the chance of being read)."""
    from modeldiff_cli.commands.interpret.activations import Sample
    from modeldiff_cli.commands.interpret.reading import chosen_rows, prediction_changes
    from modeldiff_cli.core.model.loading import load_pair
    from modeldiff_cli.core.model.readout import readout

    pair = load_pair("organism:cake:base", "organism:cake:ft", device="cpu")
    V = pair.shared_vocab
    d = pair.base.adapter.embed.weight.shape[1]
    gen = torch.Generator().manual_seed(0)
    n = 600
    hb = torch.randn(n, d, generator=gen) * 2
    hf = hb + torch.randn(n, d, generator=gen)
    zeros = torch.zeros(n, dtype=torch.long)
    s = Sample(1, hb, hf, zeros, zeros, zeros, zeros)
    w = torch.rand(n, 3, generator=gen)
    w[:, 1] = (w[:, 1] > 0.9).float() * w[:, 1]  # a sparse feature
    w[:, 2] = 0  # never active
    keep = torch.ones(V, dtype=torch.bool)
    delta = torch.log_softmax(readout(pair.ft.adapter, hf)[:, :V], -1) - torch.log_softmax(readout(pair.base.adapter, hb)[:, :V], -1)
    direct = (w[:, :2].T @ delta) / w[:, :2].sum(0).unsqueeze(1)
    out = prediction_changes(pair, s, w, keep, 10, chunk=64)
    assert out[2] is None
    for f in range(2):
        torch.testing.assert_close(out[f]["score"], direct[f], atol=1e-4, rtol=1e-4)
        assert out[f]["promoted"] == torch.argsort(direct[f], descending=True)[:10].tolist()
    rows, chance = chosen_rows(w, budget=200, top=50)
    assert rows.numel() <= 200 and bool((chance[torch.isin(rows, torch.topk(w[:, 1], 50).indices)] == 1).all())
    approx = prediction_changes(pair, s, w, keep, 10, budget=200)
    assert torch.nn.functional.cosine_similarity(approx[0]["score"], direct[0], dim=0) > 0.95


def test_category_scores_table_three_significant_digits():
    from modeldiff_cli.commands.interpret.report import category_table, sig3
    from modeldiff_cli.report.html import Ids, table
    from modeldiff_cli.report.renderers.interpret import categories_cell

    assert [sig3(x) for x in (0.24026194214820862, 12.345, -0.0010234, 100.0, 0.5)] == \
        ["0.240", "12.3", "-0.00102", "100", "0.500"]
    feats = [{"id": "F1", "kind": "direction", "categories": {"baking": 0.24026194214820862, "everyday": 0.18222913146018982}}]
    lines = category_table(feats, ["baking", "everyday"])
    assert "| F1 | direction | 0.240 | 0.182 |" in lines and "0.2402619" not in "".join(lines)
    cell = table(["categories"], [[categories_cell(feats[0]["categories"])]], Ids())
    assert "<th>baking</th>" in cell and ">0.240<" in cell and "0.2402619" not in cell and "{" not in cell
    assert categories_cell(["food"]) == "'food'"  # a list (another writer's payload) stays readable


def _write(tmp_path, obj, name="cats.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


@pytest.mark.parametrize("content, needle", [
    ("[1, 2]", "JSON object"),
    ({"a": ["x"], "b": []}, "'b' is empty"),
    ({"a": ["x"], "b": [3]}, "non-string"),
    ("{not json", "malformed JSON"),
])
def test_bad_categories_file_exit_2(cli, tmp_path, content, needle):
    path = _write(tmp_path, content)
    code, _, err = cli("interpret", "--categories", path, "--out", tmp_path / "runs")
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(path) in err and needle in err, err


@pytest.mark.parametrize("old, new, value", [("--prompts", "--categories", None), ("--positions", "--first-n", "0"),
                                             ("--k", "--active-latents", "0")])
def test_old_spellings_fill_the_renamed_options(cli, tmp_path, old, new, value):
    """One flag, one meaning: interpret's --prompts, --positions, --k are --categories, --first-n, --active-latents
    (tokenlens' prompts file, lens' all/last and attribute's cut-offs keep the old names); the old spellings still
    fill them, with a note."""
    bad = _write(tmp_path, "[1, 2]") if value is None else value
    code, _, err = cli("interpret", old, bad, "--out", tmp_path / "runs")
    lines = err.strip().splitlines()
    assert code == 2 and lines[0] == f"note: {old} is deprecated; use {new}", err
    assert lines[1].startswith(f"error: {new} "), err


def test_layer_out_of_range_exit_2(cli, tmp_path):
    code, _, err = cli("interpret", "--layers", "7", "--out", tmp_path / "runs", "--no-crosscoder")
    assert code == 2 and "--layers" in err and len(err.strip().splitlines()) == 1, err


def test_crosscoder_without_sparsify_exit_2(cli, tmp_path, monkeypatch):
    monkeypatch.setattr("modeldiff_cli.commands.interpret.command.library_version", lambda: None)
    code, _, err = cli("interpret", "--out", tmp_path)
    assert code == 2 and "eai-sparsify" in err and "--no-crosscoder" in err and len(err.strip().splitlines()) == 1, err


def test_models_without_data_exit_2(cli, tmp_path):
    code, _, err = cli("interpret", "--base", "organism:cake:base", "--ft", "organism:cake:ft", "--out", tmp_path)
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err


@pytest.fixture(scope="module")
def cake_run(tmp_path_factory):
    from typer.testing import CliRunner

    from modeldiff_cli.cli import app

    out = tmp_path_factory.mktemp("interpret")
    res = CliRunner().invoke(app, ["interpret", "--out", str(out), *FAST])
    assert res.exit_code == 0, res.output
    return out, res.stdout


def test_cake_layout_summary_and_planted_words(cake_run):
    from modeldiff_cli.organisms import get_organism

    out, stdout = cake_run
    run = next((out / "interpret").glob("*/*"))
    assert run.parent.name == "cake-base_vs_cake-ft" and run.name.startswith("categories_cake-")
    assert stdout.strip().splitlines()[-1] == str(run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["command"] == "interpret" and summary["headline"]["top_features"]
    assert all(a["description"] for a in summary["artifacts"])
    names = {a["path"] for a in summary["artifacts"]}
    assert {"features.json", "layer_category_diff.csv", "activation_stats.npz", "report.md", "report.html"} <= names
    html = (run / "report.html").read_text()
    assert "data:image/png;base64," in html and "http" not in html.replace("http-equiv", "")
    truth = get_organism("cake").ground_truth
    planted = {"Ġ" + w for w in truth["planted_words"]}
    planted_text = {" " + w for w in truth["planted_words"]}
    feats = json.loads((run / "features.json").read_text())["features"]
    top = feats[0]
    hits = len(set(top["tokens"][:10]) & planted_text)
    # its tokens: the prediction change where it is active (7-8 of 8 planted words; the data-relevance tier
    # over the vector's lens gave 6, with " a", " the" first)
    assert hits >= 7, (top["name"], top["tokens"][:10])
    assert max(top["categories"], key=top["categories"].get) == "baking"
    # ft added the vocabulary: the side says ft carries it (the report says so in words)
    assert top["side"] in ("ft-only", "ft-mostly") and top["reach"]["ft"] > top["reach"]["base"], top["reach"]
    # names: the first name-worthy words of each feature's own tokens (no filler such as " a", " the")
    for f in feats:
        words = f["name"].split(" - ")[0].split(" / ")
        listed = [t.strip() for t in f["tokens"]]
        assert all(w in listed for w in words), (f["name"], f["tokens"])
        assert not {w.lower() for w in words} & {"a", "the", "to", "of", "and", "on", "in"}, f["name"]
    assert set(top["name"].split(" - ")[0].split(" / ")) <= {w.strip() for w in planted_text}, top["name"]
    report = (run / "report.md").read_text()
    assert "| id | kind | baking | everyday |" in report and "{'baking'" not in report
    row = next(line for line in report.splitlines() if line.startswith(f"| {top['id']} | direction | "))
    assert all(len(c.strip().replace("-", "").replace(".", "").lstrip("0")) <= 3 for c in row.split("|")[3:-1]), row
    # ranked by the causal score: removing the top feature from ft brings ft closer to base
    assert top["causal_effect"] and top["causal"]["z_kl"] > 3 and top["causal"]["kl_drop"] > 0, top["causal"]
    # the fine-tune shifts every category toward baking: the everyday mean difference is a near-duplicate of the
    # baking one (merged into it, its ablation checked too); what is specific to everyday (mean_c minus the
    # mean over categories) reads as everyday, a feature of its own or (two categories: the opposite of the
    # baking-specific direction) merged into that axis
    assert any(m["source_category"] == "everyday" and m["basis"] == "mean" and "z" in m["causal"]
               for m in top["merged"]), top["merged"]
    every = feats + [m for f in feats for m in f["merged"]]
    specific = [f for f in every if f.get("basis") == "specific" and f["source_category"] == "everyday"]
    assert specific and max(specific[0]["categories"], key=specific[0]["categories"].get) == "everyday"
    rel = json.loads((run / "token_relevance.json").read_text())["categories"]["baking"]
    assert {r["token"] for r in rel[:4]} <= planted_text, rel[:6]
    assert planted  # (ground truth holds byte-level spellings)


def test_reuse_prints_same_and_loads_no_model(cake_run, monkeypatch, cli):
    out, stdout = cake_run

    def boom(*a, **k):
        raise AssertionError("model loaded on a reused run")

    monkeypatch.setattr("modeldiff_cli.core.model.loading.load_model", boom)
    code, again, _ = cli("interpret", "--out", out, *FAST)
    assert code == 0 and again.strip().splitlines() == stdout.strip().splitlines()


def test_direction_organism(tmp_path, cli):
    import numpy as np

    from modeldiff_cli.organisms import get_organism

    org = get_organism("direction")
    truth = org.ground_truth
    layer, v = truth["layer"], torch.tensor(truth["v"])
    code, stdout, err = cli("interpret", "--base", "organism:direction:base", "--ft", "organism:direction:ft",
                            "--data", org.data("baking"), "--data", org.data("everyday"), "--out", tmp_path,
                            "--crosscoder-layers", str(layer), "--features", "3", "--causal-samples", "12",
                            "--random-directions", "32", "--crosscoder-batch", "256",
                            "--max-vectors", "6000", "--latents", "128", "--active-latents", "8", "--steps", "200", "--lr", "3e-3")
    assert code == 0, err
    run = next((tmp_path / "interpret").glob("*/*"))
    stats = np.load(run / "activation_stats.npz")
    cats = list(stats["categories"])
    li = list(stats["layers"]).index(layer)
    trig = cats.index(truth["trigger_category"])
    diff = torch.tensor(stats["mean_diff"][li, trig])
    assert torch.nn.functional.cosine_similarity(diff, v, dim=0) > 0.9
    norms = stats["relative_norm"][li]
    assert int(norms.argmax()) == trig
    feats = json.loads((run / "features.json").read_text())["features"]
    cc = np.load(run / f"crosscoder_layer{layer}.npz")
    W = torch.tensor(cc["W_dec"])
    d = v.shape[0]
    rms = cc["rms"]
    dirs = W[:, d:] * float(rms[1]) - W[:, :d] * float(rms[0])
    cos = torch.nn.functional.cosine_similarity(dirs, v.unsqueeze(0), dim=1)
    ft_only = torch.tensor(cc["share"]) < 0.1
    assert bool((ft_only & (cos > 0.9)).any()), (float(cos.max()), cc["share"][int(cos.argmax())])
    planted = set(torch.nonzero(ft_only & (cos > 0.9)).flatten().tolist())
    # the latent is a feature of its own or merged into one (near-duplicate of the trigger direction); either
    # way its own ablation was checked
    every = feats + [m for f in feats for m in f.get("merged", [])]
    latent = [f for f in every if f["kind"] == "latent" and f["latent"] in planted]
    assert latent and latent[0]["side"] == "ft-only", [(f["name"], f.get("latent")) for f in feats]
    assert latent[0]["causal"]["z"] > 3 and latent[0]["causal"]["restored"] > 0.5, latent[0]["causal"]
    # ranked by the causal score: the strongest feature is the planted difference (at its layer, on the trigger)
    assert feats[0]["layer"] == layer and feats[0]["causal_effect"], feats[0]
    fv = np.load(run / "feature_vectors.npz")
    assert list(fv["ids"]) == [f["id"] for f in feats] and list(fv["layers"]) == [f["layer"] for f in feats]
    assert torch.nn.functional.cosine_similarity(torch.tensor(fv["vectors"][0]), v, dim=0) > 0.9
    assert max(feats[0]["categories"], key=feats[0]["categories"].get) == truth["trigger_category"]
    assert feats[0]["side"] == "ft-only", (feats[0]["name"], feats[0].get("reach"), feats[0]["share"])
    on_v = [f for f in feats if f["layer"] == layer and f["kind"] == "direction" and f["source_category"] == "baking"]
    assert on_v and on_v[0]["causal"]["z"] > 3 and on_v[0]["causal"]["restored"] > 0.5, on_v
