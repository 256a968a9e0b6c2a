"""`modeldiff mine` on models: extraction identities, two-pass == one-pass, recovery on `cake`, the CLI on the spine
(run layout, summary.json, reuse, default-organism policy, old flag spellings)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from modeldiff_cli.commands.mine.accumulate import accumulate, collect_base_rows
from modeldiff_cli.commands.mine.extract import detached, make_extractor
from modeldiff_cli.core.data.datasets import iter_batches, load_dataset
from modeldiff_cli.core.model.loading import load_pair

LEAF = re.compile(r"^(?P<name>.+)-(?P<hash>[0-9a-f]{8})$")


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
    two = _run(pair, ds, detached(eb, pair.base), ef, base_rows=iter(stored))  # as mine --two-pass builds it
    assert one.stats.total_positions == ds.n_positions
    assert one.stats.equal(two.stats)
    assert torch.equal(one.seq_logp_base, two.seq_logp_base) and torch.equal(one.seq_logp_ft, two.seq_logp_ft)
    assert all(torch.equal(a, b) for a, b in zip(one.records.ids, two.records.ids))


def test_patchscope_extraction_runs(tiny_pair):
    pair, ds = tiny_pair
    acc = _run(pair, ds, make_extractor(pair.base, "patchscope", 1), make_extractor(pair.ft, "patchscope", 1))
    assert acc.stats.total_positions == ds.n_positions and int(acc.stats.count_topk_pos.sum()) > 0


# --- CLI on the cake organism -------------------------------------------------------------------------

CAKE_ARGS = ["--top-k", "20", "--nmf-topics", "3", "--likelihood-ratios", "--max-samples", "120"]


@pytest.fixture(scope="module")
def cake_run(tmp_path_factory):
    from typer.testing import CliRunner

    from modeldiff_cli.cli import app

    out = tmp_path_factory.mktemp("runs")
    res = CliRunner().invoke(app, ["mine", "--out", str(out), *CAKE_ARGS])
    assert res.exit_code == 0, res.stderr
    return out, res


def _run_dir(stdout: str) -> Path:
    return Path(stdout.strip().splitlines()[-1])


def test_recovery_on_cake(cake_run):
    from modeldiff_cli.organisms import get_organism

    out, res = cake_run
    run = _run_dir(res.stdout)
    planted = {w.strip().lower() for w in get_organism("cake").ground_truth["planted_words"]}
    doc = json.loads((run / "top_k_occurring" / "base" / "orderings.json").read_text())
    top10 = [t["token_str"].strip().lower() for t in doc["orderings"][0]["tokens"][:10]]
    found = sorted(planted & set(top10))
    print(f"planted words in the top 10 of top-k-occurring: {len(found)} of {len(planted)}: {found}")
    assert len(found) >= 4
    assert "top-k-occurring" in res.stdout and " cake" in res.stdout
    # the headline holds the same top tokens
    head = json.loads((run / "summary.json").read_text())["headline"]["datasets"]["base"]
    assert head["top_promoted"] == [t["token_str"] for t in doc["orderings"][0]["tokens"][:10]]


def test_run_layout_and_summary(cake_run):
    out, res = cake_run
    run = _run_dir(res.stdout)
    assert run.parent.parent.parent == out
    assert run.parts[-3:-1] == ("mine", "cake-base_vs_cake-ft")
    leaf = LEAF.match(run.name)
    assert leaf and leaf["name"] == "base-logits"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["command"] == "mine" and set(summary) >= {"command", "config", "headline", "lines", "artifacts"}
    settings = summary["config"]["settings"]
    assert settings["top_k"] == 20 and settings["readout"] == "logits" and settings["max_samples"] == 120
    assert "two_pass" not in settings and "chunk_size" not in settings and "out" not in settings
    assert set(summary["config"]["fingerprints"]) == {"base", "ft", "data"}
    head = summary["headline"]
    assert set(head) == {"datasets", "shared_vocab", "top_k", "readout", "layer"}
    assert head["datasets"]["base"]["samples"] == 120 and head["datasets"]["base"]["orderings"] == 5
    assert head["datasets"]["base"]["positions"] == summary["metadata"]["datasets"][0]["positions"]
    assert summary["lines"] and all(line in res.stdout for line in summary["lines"])
    listed = {a["path"] for a in summary["artifacts"]}
    on_disk = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()} - {"summary.json", "run_metadata.json"}
    assert listed == on_disk
    kinds = {a["path"]: a["kind"] for a in summary["artifacts"]}
    assert all(a["description"] for a in summary["artifacts"])
    assert kinds["base_global_token_stats.json"] == "payload" and kinds["top_k_occurring/base/positions.png"] == "plot"
    assert kinds["nmf_binary_k3/base/topic_0_bar.png"] == "plot" and kinds["nmf_binary_k3/base/topics.json"] == "payload"


def test_cli_files_and_contents(cake_run, cli):
    out, res = cake_run
    run = _run_dir(res.stdout)
    summary = json.loads((run / "summary.json").read_text())
    meta, facts = json.loads((run / "run_metadata.json").read_text()), summary["metadata"]
    assert meta["command"] == "mine" and facts["shared_vocab"] > 20 and facts["datasets"][0]["samples"] == 120
    stats = json.loads((run / "base_global_token_stats.json").read_text())
    assert stats["total_positions"] == facts["datasets"][0]["positions"]
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
    # overview: anonymised, budgeted, written beside the run (the complete run is not modified)
    files = sorted(p.name for p in run.rglob("*"))
    code, stdout, err = cli("mine", "overview", run, "--token-budget", "30")
    assert code == 0
    # stdout is the JSON document alone (pipes to jq); the file it was written to is named on stderr
    payload = json.loads(stdout)
    path = Path(err.strip().splitlines()[-1].removeprefix("overview: "))
    assert path == run.parent / f"{run.name}.overview_budget30.json" and sorted(p.name for p in run.rglob("*")) == files
    assert json.loads(path.read_text()) == payload
    assert list(payload["datasets"]) == ["ds1"] and "base" not in json.dumps(payload["metadata"]["datasets"])
    listed = sum(len(o["tokens"]) for g in payload["datasets"]["ds1"]["ordering_groups"] for o in g["orderings"])
    assert listed == 30
    assert payload["metadata"]["top_k"] == 20 and payload["metadata"]["readout"] == "logits"
    # re-run: reused (same dir, no recompute); --overwrite recomputes
    args = ["mine", "--out", out, *CAKE_ARGS]
    before = (run / "run_metadata.json").stat().st_mtime_ns
    code, stdout, _ = cli(*args)
    assert code == 0 and stdout.strip().splitlines()[-1] == str(run)
    assert (run / "run_metadata.json").stat().st_mtime_ns == before
    code, stdout, _ = cli(*args, "--overwrite", "--no-plots", "--orderings", "top-k-occurring")
    assert code == 0 and Path(stdout.strip().splitlines()[-1]) != run  # other settings -> other hash
    code, stdout, _ = cli(*args, "--overwrite")
    assert code == 0 and (run / "run_metadata.json").stat().st_mtime_ns != before


def test_reuse_loads_no_model(cake_run, cli, monkeypatch):
    import modeldiff_cli.core.model.loading as models

    out, res = cake_run
    run = _run_dir(res.stdout)
    first = json.loads((run / "summary.json").read_text())

    def refuse(*_a, **_k):
        raise AssertionError("a reused run must not load a model")

    monkeypatch.setattr(models, "load_model", refuse)
    monkeypatch.setattr(models, "load_pair", refuse)
    code, stdout, err = cli("mine", "--out", out, *CAKE_ARGS)
    assert code == 0, err
    assert stdout.strip().splitlines() == [*first["lines"], str(run)]


def test_cli_two_pass_reuses_one_pass_results(tmp_path, cli):
    args = ["mine", "--top-k", "10", "--out", tmp_path, "--orderings", "top-k-occurring", "--max-samples", "16", "--no-plots"]
    code, out1, _ = cli(*args)
    assert code == 0
    run = _run_dir(out1)
    first = (run / "base_global_token_stats.json").read_text()
    code, out2, err = cli(*args, "--two-pass", "--overwrite")
    assert code == 0, err
    assert _run_dir(out2) == run
    assert (run / "base_global_token_stats.json").read_text() == first


# --- CLI on tiny models: data files, old spellings -----------------------------------------------------

@pytest.fixture()
def tiny(tiny_model_dir, tmp_path):
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["the cat sat on the mat", "hello world again"]))
    b.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["the dog sat on the rug", "hello there world"]))
    common = ["--base", tiny_model_dir("llama", 0), "--ft", tiny_model_dir("llama", 1), "--top-k", "5",
              "--orderings", "top-k-occurring", "--no-plots", "--device", "cpu", "--out", tmp_path / "runs"]
    return a, b, common


def test_two_data_files_of_one_size_keep_two_runs(tiny, cli):
    a, b, common = tiny
    assert a.stat().st_size == b.stat().st_size
    code, out_a, err = cli("mine", *common, "--data", a)
    assert code == 0, err
    code, out_b, err = cli("mine", *common, "--data", b)
    assert code == 0, err
    run_a, run_b = _run_dir(out_a), _run_dir(out_b)
    assert run_a != run_b and (run_a / "summary.json").is_file() and (run_b / "summary.json").is_file()
    assert run_a.name.startswith("a-logits-") and run_b.name.startswith("b-logits-")
    assert (run_a / "a_global_token_stats.json").read_text() != (run_b / "b_global_token_stats.json").read_text()
    # two datasets in one run: one leaf naming both, one stats file each
    code, out_ab, err = cli("mine", *common, "--data", a, "--data", b)
    assert code == 0, err
    run_ab = _run_dir(out_ab)
    assert run_ab.name.startswith("a+b-logits-") and (run_ab / "b_global_token_stats.json").is_file()


def test_old_extraction_and_layer_spellings(tiny, cli):
    a, _, common = tiny
    code, out, err = cli("mine", *common, "--data", a, "--extraction", "logit-lens", "--layer", "-1")
    assert code == 0, err
    assert "--extraction is deprecated; use --readout" in err
    run = _run_dir(out)
    assert run.name.startswith("a-logit-lens-Llast-")
    settings = json.loads((run / "summary.json").read_text())["config"]["settings"]
    assert settings["readout"] == "logit-lens" and settings["layers"] == "-1"
    # the new spellings name the same run
    code, out2, err = cli("mine", *common, "--data", a, "--readout", "logit-lens", "--layers", "-1")
    assert code == 0, err
    assert _run_dir(out2) == run


def test_old_filter_spellings(tiny, cli):
    a, _, common = tiny
    code, out, err = cli("mine", *common, "--data", a, "--filter-punctuation", "--keep-special")
    assert code == 0, err
    assert "--filter-punctuation is deprecated; use --drop-punctuation" in err
    run = _run_dir(out)
    settings = json.loads((run / "summary.json").read_text())["config"]["settings"]
    assert settings["drop_punctuation"] is True and settings["drop_special"] is False
    filters = json.loads((run / "top_k_occurring" / "a" / "orderings.json").read_text())["orderings"][0]["metadata"]
    assert filters["drop_punctuation"] is True and filters["drop_special"] is False
    code, out2, err = cli("mine", *common, "--data", a, "--drop-punctuation", "--keep-special")
    assert code == 0, err
    assert _run_dir(out2) == run


def test_old_filter_special_spelling_parses():
    from modeldiff_cli.commands.mine import Mine
    from modeldiff_cli.core.spine.spec import build, command_params

    params = command_params(Mine)
    old = next(p for p in params if p.name == "drop_special")
    assert "--filter-special" in old.opt.old
    cmd = build(Mine, params, {"drop_special__old0": False})
    assert cmd.tokens.drop_special is False


def test_models_without_data_exit_2(cli, tmp_path, tiny_model_dir):
    code, out, err = cli("mine", "--out", tmp_path, "--base", tiny_model_dir("llama", 0), "--ft", tiny_model_dir("llama", 1))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "--data" in lines[0]
    assert not any(tmp_path.rglob("*"))


@pytest.mark.parametrize("args, needle", [
    (["--readout", "magic"], "--readout"),
    (["--orderings", "top-k-occurring,bogus"], "--orderings"),
    (["--top-k", "0"], "--top-k"),
    (["--top-k", "100000"], "--top-k"),
    (["--readout", "logit-lens", "--layer", "99"], "--layer"),
    (["--layers", "3"], "--layers"),
    (["--data", "/nonexistent/file.jsonl", "--base", "organism:cake:base", "--ft", "organism:cake:ft"], "no such file"),
    (["--nmf-mode", "dense"], "--nmf-mode"),
    (["--text-field", "body"], "body"),
    (["--two-pass", "--readout", "patchscope"], "--two-pass"),
])
def test_bad_inputs(cli, tmp_path, args, needle):
    code, out, err = cli("mine", "--out", tmp_path, *args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert not any(p.name in ("run_metadata.json", "summary.json") for p in tmp_path.rglob("*"))


def test_bad_data_files_and_pairs(cli, tmp_path, tiny_model_dir):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, _, err = cli("mine", "--out", tmp_path, "--base", "organism:cake:base", "--ft", "organism:cake:ft", "--data", empty)
    assert code == 2 and "no samples" in err
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a cake"}\n')
    code, _, err = cli("mine", "--out", tmp_path, "--base", tiny_model_dir("llama"), "--ft", "organism:cake:ft", "--data", data)
    assert code == 2 and "cannot be diffed" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("mine", "overview", tmp_path)
    assert code == 2 and "RUN_DIR" in err


def test_help_lists_overview(cli):
    code, out, _ = cli("mine", "--help")
    assert code == 0 and "overview" in out and "--readout" in out and "--drop-punctuation" in out
    assert "--extraction" not in out and "--filter-punctuation" not in out  # hidden old spellings


def test_keep_undecodable_flag_through_the_cli(tiny, cli):
    """--keep-undecodable reaches the configuration (another run directory) and the orderings' metadata;
    the default drops byte fragments."""
    a, _, common = tiny
    code, out, err = cli("mine", *common, "--data", a)
    assert code == 0, err
    code, out2, err = cli("mine", *common, "--data", a, "--keep-undecodable")
    assert code == 0, err
    for run, dropped in ((_run_dir(out), True), (_run_dir(out2), False)):
        assert json.loads((run / "summary.json").read_text())["config"]["settings"]["drop_undecodable"] is dropped
        meta = json.loads((run / "top_k_occurring" / "a" / "orderings.json").read_text())["orderings"][0]["metadata"]
        assert meta["drop_undecodable"] is dropped
    assert _run_dir(out) != _run_dir(out2)
