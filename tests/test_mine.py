"""`modeldiff mine` on models: extraction identities, two-pass == one-pass, recovery on `cake`, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from modeldiff_cli.commands.mine.accumulate import accumulate, collect_base_rows
from modeldiff_cli.commands.mine.extract import Extractor, detached_readout, make_extractor
from modeldiff_cli.core.data import iter_batches, load_dataset
from modeldiff_cli.core.models import load_pair


@pytest.fixture(scope="module")
def tiny_pair(tiny_model_dir, tmp_path_factory):
    pair = load_pair(str(tiny_model_dir("llama", 0)), str(tiny_model_dir("llama", 1)), device="cpu")
    data = tmp_path_factory.mktemp("mine") / "d.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in
                            ["the cat sat on the mat", "hello world, this is a tiny corpus", "numbers 0 1 2 3 and more"]))
    ds = load_dataset(data, pair.tokenizer)
    return pair, ds


def _run(pair, ds, ex_b, ex_f, **kw):
    batches = list(iter_batches(ds.samples, 2, pair.tokenizer.pad_token_id))
    return accumulate(batches, ex_b, ex_f, vocab=pair.shared_vocab, top_k=5, n_samples=3, max_len=20,
                      chunk_size=7, collect_records=True, likelihood=True, **kw)


def test_logits_equal_logit_lens_at_last_layer(tiny_pair):
    pair, ds = tiny_pair
    batch = next(iter_batches(ds.samples, 3, pair.tokenizer.pad_token_id))
    for loaded in (pair.base, pair.ft):
        a, b = make_extractor(loaded, "logits"), make_extractor(loaded, "logit-lens", loaded.adapter.n_layers - 1)
        la, lb = a.read(a.hidden(batch)), b.read(b.hidden(batch))
        full = loaded.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[batch.position_mask]
        torch.testing.assert_close(la, lb, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(la, full.float(), atol=1e-5, rtol=1e-5)
    one = _run(pair, ds, make_extractor(pair.base, "logits"), make_extractor(pair.ft, "logits"))
    lens = _run(pair, ds, make_extractor(pair.base, "logit-lens", -1 % 2), make_extractor(pair.ft, "logit-lens", 1))
    assert torch.equal(one.stats.count_topk_pos, lens.stats.count_topk_pos)


@pytest.mark.parametrize("kind", ["logits", "logit-lens"])
def test_two_pass_equals_one_pass(tiny_pair, kind):
    pair, ds = tiny_pair
    layer = None if kind == "logits" else 0
    eb, ef = make_extractor(pair.base, kind, layer), make_extractor(pair.ft, kind, layer)
    one = _run(pair, ds, eb, ef)
    stored = collect_base_rows(iter_batches(ds.samples, 2, pair.tokenizer.pad_token_id), eb)
    detached = Extractor(kind, None, detached_readout(pair.base, kind))
    two = _run(pair, ds, detached, ef, base_rows=iter(stored))
    assert one.stats.total_positions == ds.n_positions
    assert one.stats.equal(two.stats)
    assert torch.equal(one.seq_logp_base, two.seq_logp_base) and torch.equal(one.seq_logp_ft, two.seq_logp_ft)
    assert all(torch.equal(a, b) for a, b in zip(one.records.ids, two.records.ids))


def test_patchscope_extraction_runs(tiny_pair):
    pair, ds = tiny_pair
    acc = _run(pair, ds, make_extractor(pair.base, "patchscope", 1), make_extractor(pair.ft, "patchscope", 1))
    assert acc.stats.total_positions == ds.n_positions and int(acc.stats.count_topk_pos.sum()) > 0


# --- CLI on the cake organism -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cake_run(tmp_path_factory):
    from typer.testing import CliRunner

    from modeldiff_cli.cli import app

    out = tmp_path_factory.mktemp("runs")
    res = CliRunner().invoke(app, ["mine", "--top-k", "20", "--out", str(out), "--nmf-topics", "3",
                                   "--likelihood-ratios", "--max-samples", "120"])
    assert res.exit_code == 0, res.stderr
    return out, res


def test_recovery_on_cake(cake_run):
    from modeldiff_cli.organisms import get_organism

    out, res = cake_run
    run = Path(res.stdout.strip().splitlines()[-1])
    planted = {w.strip().lower() for w in get_organism("cake").ground_truth["planted_words"]}
    doc = json.loads((run / "top_k_occurring" / "base" / "orderings.json").read_text())
    top10 = [t["token_str"].strip().lower() for t in doc["orderings"][0]["tokens"][:10]]
    found = sorted(planted & set(top10))
    print(f"planted words in the top 10 of top-k-occurring: {len(found)} of {len(planted)}: {found}")
    assert len(found) >= 4
    assert "top-k-occurring" in res.stdout and " cake" in res.stdout


def test_cli_files_and_contents(cake_run, cli):
    out, res = cake_run
    run = Path(res.stdout.strip().splitlines()[-1])
    assert run.parent.name == "mine_120s_128t_top20_logits" + run.parent.name[len("mine_120s_128t_top20_logits"):]
    assert run.name == "seed0" and run.parts[-4:-2] == ("cake-base", "cake-ft")
    meta = json.loads((run / "run_metadata.json").read_text())
    assert meta["command"] == "mine" and meta["shared_vocab"] > 20 and meta["datasets"][0]["samples"] == 120
    stats = json.loads((run / "base_global_token_stats.json").read_text())
    assert stats["total_positions"] == meta["datasets"][0]["positions"]
    assert sum(stats["count_topk_positive"]) <= 20 * stats["total_positions"]
    assert max(stats["count_positive_diff"]) <= stats["total_positions"]
    frac = json.loads((run / "fraction_positive_diff" / "base" / "orderings.json").read_text())["orderings"][0]
    t0 = frac["tokens"][0]
    assert abs(t0["ordering_value"] - stats["count_positive_diff"][t0["token_id"]] / stats["total_positions"]) < 1e-9
    nmf = run / "nmf_binary_k3" / "base"
    topics = json.loads((nmf / "topics.json").read_text())
    assert len(topics["mass"]) == 3 and abs(sum(topics["mass"]) - 1) < 1e-4
    assert json.loads((nmf / "topic_0.json").read_text())["ordering_id"] == "nmf_topic_0"
    ratios = json.loads((run / "base_sequence_likelihood_ratios.json").read_text())
    assert len(ratios) == 120 and all(abs(r["log_likelihood_ratio"] - (r["logp_ft"] - r["logp_base"])) < 1e-9 for r in ratios)
    assert (run / "top_k_occurring" / "base" / "top_k_occurring_bar.png").stat().st_size > 1000
    # overview: anonymised, budgeted
    code, stdout, _ = cli("mine", "overview", run, "--token-budget", "30")
    assert code == 0
    payload = json.loads(Path(stdout.strip().splitlines()[-1]).read_text())
    assert list(payload["datasets"]) == ["ds1"] and "base" not in json.dumps(payload["metadata"]["datasets"])
    listed = sum(len(o["tokens"]) for g in payload["datasets"]["ds1"]["ordering_groups"] for o in g["orderings"])
    assert listed == 30
    # re-run: reused (same dir, no recompute); --overwrite recomputes
    args = ["mine", "--top-k", "20", "--out", out, "--nmf-topics", "3", "--likelihood-ratios", "--max-samples", "120"]
    before = (run / "run_metadata.json").stat().st_mtime_ns
    code, stdout, _ = cli(*args)
    assert code == 0 and stdout.strip().splitlines()[-1] == str(run)
    assert (run / "run_metadata.json").stat().st_mtime_ns == before
    code, stdout, _ = cli(*args, "--overwrite", "--no-plots", "--orderings", "top-k-occurring")
    assert code == 0 and Path(stdout.strip().splitlines()[-1]) != run  # other orderings -> hashed suffix
    code, stdout, _ = cli(*args, "--overwrite")
    assert code == 0 and (run / "run_metadata.json").stat().st_mtime_ns != before


def test_cli_two_pass_reuses_one_pass_results(tmp_path, cli):
    args = ["mine", "--top-k", "10", "--out", tmp_path, "--orderings", "top-k-occurring", "--max-samples", "16", "--no-plots"]
    code, out1, _ = cli(*args)
    assert code == 0
    run = Path(out1.strip().splitlines()[-1])
    first = (run / "base_global_token_stats.json").read_text()
    code, out2, err = cli(*args, "--two-pass", "--overwrite")
    assert code == 0, err
    assert (run / "base_global_token_stats.json").read_text() == first


@pytest.mark.parametrize("args, needle", [
    (["--extraction", "magic"], "--extraction"),
    (["--orderings", "top-k-occurring,bogus"], "--orderings"),
    (["--top-k", "0"], "--top-k"),
    (["--top-k", "100000"], "--top-k"),
    (["--extraction", "logit-lens", "--layer", "99"], "--layer"),
    (["--data", "/nonexistent/file.jsonl", "--base", "organism:cake:base", "--ft", "organism:cake:ft"], "no such file"),
    (["--nmf-mode", "dense"], "--nmf-mode"),
    (["--text-field", "body"], "body"),
    (["--two-pass", "--extraction", "patchscope"], "--two-pass"),
])
def test_bad_inputs(cli, tmp_path, args, needle):
    code, out, err = cli("mine", "--out", tmp_path, *args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert not any(p.name == "run_metadata.json" for p in tmp_path.rglob("*"))


def test_bad_data_files_and_pairs(cli, tmp_path, tiny_model_dir):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, _, err = cli("mine", "--out", tmp_path, "--base", "organism:cake:base", "--ft", "organism:cake:ft", "--data", empty)
    assert code == 2 and "no samples" in err
    code, _, err = cli("mine", "--out", tmp_path, "--base", tiny_model_dir("llama"), "--ft", "organism:cake:ft", "--data", empty)
    assert code == 2 and "cannot be diffed" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("mine", "overview", tmp_path)
    assert code == 2 and "RUN_DIR" in err


def test_help_lists_overview(cli):
    code, out, _ = cli("mine", "--help")
    assert code == 0 and "overview" in out and "--extraction" in out
