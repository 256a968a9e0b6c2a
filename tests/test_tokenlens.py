"""tokenlens: native engine == inseq, batching identities, CLI end to end (cake organism), diff mode, HTML, bench,
the spine (run layout, summary.json, reuse without a model load, old flag spellings, exports) and every bad-input
path."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
import torch
from tiny import FAMILY_CONFIGS

from modeldiff_cli.commands.tokenlens import engine
from modeldiff_cli.commands.tokenlens.generate import greedy
from modeldiff_cli.core.spine.spec import command_params

NATIVE = ["saliency", "input_x_gradient", "integrated_gradients"]


@pytest.fixture(scope="module")
def tiny_llama():
    from tiny import build_model

    model, tok = build_model("llama")
    model.requires_grad_(False)
    return model, tok


def _nan_close(a: torch.Tensor, b: torch.Tensor, rtol=1e-4, atol=1e-7) -> None:
    assert a.shape == b.shape
    assert torch.equal(a.isnan(), b.isnan())
    scale = b.nan_to_num(0).abs().max().item()
    torch.testing.assert_close(a.nan_to_num(0), b.nan_to_num(0), rtol=rtol, atol=atol + 1e-5 * scale)


@pytest.mark.parametrize("chunk", [1, 3, 64])
@pytest.mark.parametrize("method", NATIVE)
def test_native_matches_inseq(tiny_llama, method, chunk):
    from modeldiff_cli.commands.tokenlens.inseq_backend import InseqAttributor

    model, tok = tiny_llama
    prompt, full = "the cat sat on", "the cat sat on the mat and"
    ids = tok(full)["input_ids"]
    p = len(tok(prompt)["input_ids"])
    with InseqAttributor(model, tok, method) as attributor:
        ref, ref_ids, raw = attributor.attribute(prompt, full, n_steps=6)
    nat = engine.attribute(model, tok, [engine.Sequence(ids, p)], method, n_steps=6, chunk=chunk)[0]
    assert len(ids) - p > 3  # chunk 1 and 3: several cached chunks; 64: the prompt and one chunk
    assert ref_ids == ids and nat.shape == (len(ids), len(ids) - p)
    assert nat[p - 1, 0] > 0 and math.isnan(nat[p, 0])  # step 0 sees the prompt only
    _nan_close(nat, ref)
    # inseq's default (normalised) aggregation equals our normalisation of the raw matrix
    _nan_close(engine.normalize(nat), raw.aggregate().sequence_attributions[0].target_attributions.float())


@pytest.mark.parametrize("family", ["gpt2", "gemma"])
def test_native_matches_inseq_other_families(family):
    from tiny import build_model

    from modeldiff_cli.commands.tokenlens.inseq_backend import InseqAttributor

    model, tok = build_model(family)
    model.requires_grad_(False)
    ids, p = tok("hello world, this is")["input_ids"], len(tok("hello world,")["input_ids"])
    with InseqAttributor(model, tok, "integrated_gradients") as attributor:
        ref = attributor.attribute("hello world,", "hello world, this is", n_steps=4)[0]
    _nan_close(engine.attribute(model, tok, [engine.Sequence(ids, p)], "integrated_gradients", n_steps=4, chunk=2)[0], ref)


@pytest.mark.parametrize("family", [*FAMILY_CONFIGS, "gemma2-sliding"])
def test_chunked_pass_equals_one_pass_every_family(family):
    """The chunked forward (key/value cache with its graph) with left padding gives what one full pass gives."""
    from tiny import build_model

    model, tok = build_model(family.removesuffix("-sliding"))
    seqs = [engine.Sequence(list(range(5, 5 + n)), p) for n, p in ((13, 4), (9, 6))]
    if family.endswith("-sliding"):  # window 3 < sequence: the cache drops keys, attribution must not change
        from transformers import AutoModelForCausalLM

        full = model
        model = AutoModelForCausalLM.from_config(full.config.__class__(**{**full.config.to_dict(), "sliding_window": 3})).eval()
        model.load_state_dict(full.state_dict())
        ids = torch.tensor([seqs[0].ids])
        with torch.no_grad():  # same weights, and the window is really in effect
            assert not torch.allclose(model(ids).logits[0, -1], full(ids).logits[0, -1])
    model.requires_grad_(False)
    one = [engine.attribute(model, tok, [s], "saliency", chunk=64)[0] for s in seqs]
    for chunk in (1, 3):
        for a, b in zip(engine.attribute(model, tok, seqs, "saliency", chunk=chunk, batch_size=2), one):
            _nan_close(a, b, rtol=1e-4)


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients"])
def test_padding_batched_equals_one_by_one(tiny_llama, method):
    model, tok = tiny_llama
    seqs = [engine.Sequence(list(range(5, 5 + n)), p) for n, p in ((14, 6), (9, 5), (11, 3))]
    batched = engine.attribute(model, tok, seqs, method, n_steps=4, batch_size=3)
    for s, b in zip(seqs, batched):
        _nan_close(b, engine.attribute(model, tok, [s], method, n_steps=4, batch_size=1)[0])
    assert len(engine.plan_batches(seqs, 3, method, 4)) == 1


def _counting_passes(monkeypatch) -> list[int]:
    """Record the rows of every pass (chunked forward + its backwards) the engine runs."""
    rows: list[int] = []
    real = engine.causal_grads

    def counted(model, x, batch, score, chunk):
        rows.append(x.shape[0])
        return real(model, x, batch, score, chunk)

    monkeypatch.setattr(engine, "causal_grads", counted)
    return rows


@pytest.mark.parametrize("kind", ["cpu-caps", "memory"])
def test_ig_tiny_budgets_equal_one_pass(tiny_llama, monkeypatch, kind):
    """Integrated gradients cut into many passes (a point or two per pass, several batches) equal one pass of
    every prompt x every point; the memory-planned (CUDA-style) budgets are exercised with a made-up memory."""
    from modeldiff_cli.commands.tokenlens import budgets

    model, tok = tiny_llama
    seqs = [engine.Sequence(list(range(5, 5 + n)), p) for n, p in ((14, 6), (9, 5), (11, 3), (12, 7))]
    rows = _counting_passes(monkeypatch)
    big = budgets.Budgets(tokens=10**9, vmap=10**9)
    one = engine.attribute(model, tok, seqs, "integrated_gradients", n_steps=7, batch_size=4, chunk=3, budgets=big)
    assert rows == [4 * 7]  # one pass: 4 prompts x 7 points
    if kind == "cpu-caps":  # 2 rows x 14 positions per forward, chunks of 3: a point per pass, two batches
        tiny = budgets.Budgets(tokens=2 * 14, vmap=2 * 14 * 3)
    else:
        fp = budgets.footprint(model.config, 4)
        tiny = budgets.Budgets(memory=2.5 * fp.pass_bytes(1, 14, 3), footprint=fp)  # 2 rows of 14 positions
    rows.clear()
    many = engine.attribute(model, tok, seqs, "integrated_gradients", n_steps=7, batch_size=4, chunk=3, budgets=tiny)
    assert len(rows) >= 2 * 4 and max(rows) <= 2 and sum(rows) == 4 * 7
    for a, b in zip(many, one):
        _nan_close(a, b)
        assert (a.nan_to_num(0) > 0).any()


def test_ig_out_of_memory_halves_the_budget(tiny_llama, monkeypatch):
    """A pass that runs out of CUDA memory is retried with fewer points per pass, then a smaller batch; the
    result is the unconstrained one."""
    from modeldiff_cli.commands.tokenlens import budgets

    model, tok = tiny_llama
    seqs = [engine.Sequence(list(range(5, 5 + n)), p) for n, p in ((10, 4), (8, 5), (9, 3))]
    big = budgets.Budgets(tokens=10**9, vmap=10**9)
    ref = engine.attribute(model, tok, seqs, "integrated_gradients", n_steps=6, batch_size=3, budgets=big)
    real, tried = engine.causal_grads, []

    def small_device(model, x, batch, score, chunk):
        tried.append(x.shape[0])
        if x.shape[0] > 2:  # more than 2 rows do not fit
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, x, batch, score, chunk)

    monkeypatch.setattr(engine, "causal_grads", small_device)
    got = engine.attribute(model, tok, seqs, "integrated_gradients", n_steps=6, batch_size=3, budgets=big)
    assert tried[0] == 18 and max(r for r in tried if r <= 2) == 2 and len(tried) > 6
    for a, b in zip(got, ref):
        _nan_close(a, b)
    monkeypatch.setattr(engine, "causal_grads", lambda *a: (_ for _ in ()).throw(RuntimeError("other")))
    with pytest.raises(RuntimeError, match="other"):  # other errors are not retried
        engine.attribute(model, tok, seqs[:1], "integrated_gradients", n_steps=2, budgets=big)


def test_budgets_split_and_device(tiny_llama, monkeypatch):
    from modeldiff_cli.commands.tokenlens import budgets

    assert budgets.split(16, 6) == [(0, 6), (6, 11), (11, 16)] and budgets.split(8, 100) == [(0, 8)]
    assert budgets.split(5, 1) == [(i, i + 1) for i in range(5)]
    model, _ = tiny_llama

    def no_cuda(*a, **k):
        raise AssertionError("a CUDA call for a CPU model")

    monkeypatch.setattr(torch.cuda, "mem_get_info", no_cuda)
    assert budgets.for_model(model) == budgets.CPU  # CPU: today's caps, no CUDA call
    assert engine.alpha_groups(50, 8, 36, 8) == 3 == 8192 // (8 * 36 * 8)  # today's CPU caps
    assert engine.alpha_groups(8, 2, 20, 8) == 8 and engine.alpha_groups(8, 2, 2000, 8) == 1
    fp = budgets.footprint(model.config, 4)
    mem = budgets.Budgets(memory=fp.pass_bytes(10, 30, 8), footprint=fp)
    assert mem.pass_rows(30, 8) == 10 and mem.halved().pass_rows(30, 8) == 5
    assert mem.pass_rows(60, 8) < mem.pass_rows(30, 8) and mem.pass_rows(30, 16) < 10


def test_chunk_bounds_and_no_targets(tiny_llama):
    assert engine.chunk_bounds(5, 7, 3) == [0, 7, 10, 11]  # reads at 4..10: [4,7) in chunk 0, then 3 at a time
    assert engine.chunk_bounds(1, 2, 8) == [0, 2]
    model, tok = tiny_llama
    out = engine.attribute(model, tok, [engine.Sequence([5, 6, 7], 3)], "saliency")[0]
    assert out.shape == (3, 0)


def test_logit_score_and_normalisation(tiny_llama):
    model, tok = tiny_llama
    seq = engine.Sequence(list(range(10, 22)), 7)
    prob = engine.attribute(model, tok, [seq], "saliency")[0]
    logit = engine.attribute(model, tok, [seq], "saliency", score="logit")[0]
    assert not torch.allclose(prob.nan_to_num(0), logit.nan_to_num(0))
    norm = engine.normalize(prob)
    torch.testing.assert_close(norm.nan_to_num(0).sum(0), torch.ones(prob.shape[1]))


def test_greedy_left_padding_matches_single(tiny_llama):
    model, tok = tiny_llama
    prompts = [tok("the cat sat on the mat")["input_ids"], tok("hello")["input_ids"]]
    together = greedy(model, tok, prompts, 5, batch_size=2)
    alone = [greedy(model, tok, [p], 5, batch_size=1)[0] for p in prompts]
    assert [s.ids for s in together] == [s.ids for s in alone]
    assert all(s.n_targets == 5 and s.prompt_len == len(p) for s, p in zip(together, prompts))


# ---------------------------------------------------------------- CLI on the cake organism


def _run_dir(out: str) -> Path:
    return Path(out.strip().splitlines()[-1])


def _matrix(rows) -> torch.Tensor:
    return torch.tensor([[float("nan") if v is None else v for v in r] for r in rows])


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def _check_summary(run: Path, command: str = "tokenlens") -> dict:
    summary = _summary(run)
    assert summary["command"] == command and summary["config"]["command"] == command
    assert {"settings", "fingerprints"} <= set(summary["config"])
    assert summary["headline"] and summary["lines"]
    files = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()} - {"summary.json", "run_metadata.json"}
    assert {a["path"] for a in summary["artifacts"]} == files
    assert all(a["description"].strip() and a["kind"] for a in summary["artifacts"]), summary["artifacts"]
    return summary


def test_cli_attribute_end_to_end(cli, tmp_path, monkeypatch):
    html_copy = tmp_path / "copy" / "view.html"
    code, out, err = cli("tokenlens", "attribute", "--prompt", "I baked a", "--max-new-tokens", "4",
                         "--out", tmp_path, "--html-out", html_copy, "--device", "cpu")
    assert code == 0, err
    run = _run_dir(out)
    # run layout: {out}/tokenlens/{model}/{name}-{hash}
    assert run.parent.parent.parent == tmp_path and run.parent.parent.name == "tokenlens"
    assert run.parent.name == "cake-ft" and re.fullmatch(r"prompt\+saliency-[0-9a-f]{8}", run.name)
    summary = _check_summary(run)
    head = summary["headline"]
    assert head["method"] == "saliency" and head["engine"] == "native" and head["succeeded"] == 1
    rec = json.loads((run / "prompt_000.json").read_text())
    meta, data = rec["metadata"], rec["data"]
    assert meta["attribution_method"] == "saliency" and meta["generation_params"]["max_new_tokens"] == 4
    assert {"timestamp", "llm_id", "prompt"} <= set(meta)
    assert len(data["output_tokens"]) == 4 and len(data["input_tokens"]) == data["prompt_length"] + 4
    assert not any("Ġ" in t or "Ċ" in t for t in data["input_tokens"])  # BPE markers decoded
    m, n = _matrix(data["association_matrix"]), _matrix(data["normalized_association"])
    assert m.shape == (len(data["input_tokens"]), 4)
    torch.testing.assert_close(n.nan_to_num(0).sum(0), torch.ones(4))
    # headline: the generated text and the top input token of the first step (normalised, --model)
    (p0,) = head["prompts"]
    assert p0["status"] == "ok" and p0["generated"] == "".join(data["output_tokens"])
    col = n[:, 0].nan_to_num(-1.0)
    assert p0["top_input_index"] == int(col.argmax()) and p0["top_input_token"] == data["input_tokens"][p0["top_input_index"]]
    page = (run / "prompt_000.html").read_text()
    assert page == html_copy.read_text()  # the export: a copy of the finished page
    assert not re.search(r"https?://", page) and "<link" not in page and "src=" not in page
    blob = json.loads(re.search(r'id="tokenlens-data">(.*?)</script>', page, re.S).group(1))
    assert blob["views"]["model"]["normalized"] == data["normalized_association"]
    # same config -> same directory, reused: same lines, no model loaded, and the export works from it too
    import modeldiff_cli.core.model.loading as models

    def no_load(*a, **k):
        raise AssertionError("a reused run loaded a model")

    monkeypatch.setattr(models, "load_model", no_load)
    json_copy = tmp_path / "again" / "rec.json"
    code2, out2, err2 = cli("tokenlens", "attribute", "--prompt", "I baked a", "--max-new-tokens", "4",
                            "--out", tmp_path, "--device", "cpu", "--json-out", json_copy)
    assert code2 == 0, err2
    assert _run_dir(out2) == run and out2 == out and "reusing" in err2
    assert json.loads(json_copy.read_text()) == rec


def test_exports_only_after_the_run_is_complete(cli, tmp_path, monkeypatch):
    """Nothing is written outside the run directory while it is partial; a failed run exports nothing."""
    from modeldiff_cli.commands.tokenlens import pipeline

    def boom(*a, **k):
        raise pipeline.UserError("--prompt: boom")

    monkeypatch.setattr(pipeline, "attribute_all", boom)
    dest = tmp_path / "exports" / "x.json"
    code, out, err = cli("tokenlens", "attribute", "--prompt", "I baked a", "--max-new-tokens", "2",
                         "--out", tmp_path / "runs", "--json-out", dest, "--html-out", tmp_path / "x.html",
                         "--device", "cpu")
    assert code == 2 and "boom" in err
    assert not dest.parent.exists() and not (tmp_path / "x.html").exists()
    assert [p for p in (tmp_path / "runs").rglob("*") if p.is_file()] == []


def test_export_paths_of_several_prompts(tmp_path):
    from modeldiff_cli.commands.tokenlens.export import export, export_paths

    assert export_paths(tmp_path / "a.json", 1) == [tmp_path / "a.json"]
    assert export_paths(tmp_path / "a.json", 3)[2] == tmp_path / "a_002.json"
    run = tmp_path / "run"
    run.mkdir()
    (run / "prompt_000.json").write_text("{}")
    (run / "prompt_002.json").write_text('{"b": 1}')
    prompts = [{"index": 0, "status": "ok"}, {"index": 1, "status": "failed"}, {"index": 2, "status": "ok"}]
    written = export(run, prompts, tmp_path / "out" / "r.json", None)
    assert [p.name for p in written] == ["r_000.json", "r_002.json"]
    assert (tmp_path / "out" / "r_002.json").read_text() == '{"b": 1}' and not (tmp_path / "out" / "r_001.json").exists()


def test_organism_default_and_policy():
    """No model: the organism's ft model on 4 prompts of its base data; --model without prompts: exit 2 (spine)."""
    from modeldiff_cli.commands.tokenlens.command import TokenlensAttribute, TokenlensBench
    from modeldiff_cli.core.errors import UserError
    from modeldiff_cli.core.model.sources import organism_data

    cmd = TokenlensAttribute.make()
    assert cmd.compared.model == "organism:cake:ft" and cmd.prompts == str(organism_data("cake", "base"))
    assert cmd.reading.max_samples == 4 and cmd.reading.max_tokens is None and cmd.attribution_engine == "native"
    assert TokenlensAttribute.make(prompt="hi").reading.max_samples is None
    assert TokenlensAttribute.make(method="attention", prompt="hi").attribution_engine == "inseq"  # auto, resolved light
    with pytest.raises(UserError, match="--prompt: required when"):
        TokenlensAttribute.make(model="organism:cake:ft")
    with pytest.raises(UserError, match="--ft: required when --base is given"):
        TokenlensAttribute.make(base="organism:cake:base", prompt="hi")
    with pytest.raises(UserError, match="--model and --base/--ft are exclusive"):
        TokenlensAttribute.make(base="organism:cake:base", ft="organism:cake:ft", model="organism:cake:ft", prompt="hi")
    diff = TokenlensAttribute.make(base="organism:cake:base", ft="organism:cake:ft", prompt="hi")
    assert diff.compared.two_models and diff.compared.labels == ("cake-base", "cake-ft")
    assert {"base_device", "ft_device"} <= {p.name for p in command_params(TokenlensAttribute)}
    bench = TokenlensBench.make()
    assert bench.model == ("organism:cake:base", "organism:cake:ft") and bench.prompt_words == 8
    assert bench.reading.max_samples == 4 and bench.reading.batch_size == 1
    assert TokenlensBench.make(model=["a,b", "c"], method=["saliency"], prompts="x").model == ("a", "b", "c")


def test_model_without_prompts_exits_2_one_line(cli, tmp_path):
    code, out, err = cli("tokenlens", "attribute", "--model", "organism:cake:ft", "--out", tmp_path)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --prompt") and "required when" in lines[0], err


def test_diff_mode_incompatible_pair_names_ft_flag(cli, tmp_path):
    """Diff mode is --base/--ft as in every pair command: a pair that cannot be diffed names those flags; the old
    spelling --base B --model F still works, with a deprecation note."""
    import shutil

    from modeldiff_cli.core.model.sources import resolve_source

    base = resolve_source("organism:cake:base", role="base", flag="--base")
    other = tmp_path / "wider"
    other.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(base.location) / name, other / name)
    cfg = json.loads((Path(base.location) / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "hidden_size": 2 * cfg["hidden_size"]}))
    code, out, err = cli("tokenlens", "attribute", "--ft", other, "--base", "organism:cake:base", "--prompt", "hi",
                         "--out", tmp_path / "runs")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and f"--ft {other}" in lines[0] and "--model" not in lines[0], err
    assert "cannot be diffed" in lines[0], err
    code, out, err = cli("tokenlens", "attribute", "--model", other, "--base", "organism:cake:base", "--prompt", "hi",
                         "--out", tmp_path / "runs")
    lines = err.strip().splitlines()
    assert code == 2 and lines[0] == "note: --model with --base is deprecated; use --ft for the fine-tuned model", err
    assert len(lines) == 2 and f"--ft {other}" in lines[1] and "cannot be diffed" in lines[1], err


def test_left_pad_aligns_prompt_ends():
    seqs = [engine.Sequence([1, 2, 3, 4, 5], 3), engine.Sequence([7, 8, 9], 1)]
    b = engine.left_pad(seqs, 0, "cpu")
    assert b.n_prompt == 3 and b.n_targets == 2
    assert b.ids.tolist() == [[1, 2, 3, 4, 5], [0, 0, 7, 8, 9]]
    assert b.attn.tolist() == [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]
    assert b.pos.tolist() == [[0, 1, 2, 3, 4], [0, 0, 0, 1, 2]]
    assert b.valid.tolist() == [[1.0, 1.0], [1.0, 1.0]] and b.targets.tolist() == [[4, 5], [8, 9]]
    short = engine.left_pad([engine.Sequence([1, 2, 3], 2), engine.Sequence([4, 5, 6, 7], 1)], 0, "cpu")
    assert short.ids.tolist() == [[1, 2, 3, 0, 0], [0, 4, 5, 6, 7]] and short.valid.tolist() == [[1, 0, 0], [1, 1, 1]]


def test_cli_diff_mode_is_ft_minus_base(cli, tmp_path):
    from modeldiff_cli.core.model.loading import load_model

    args = ["--prompt", "My favourite", "--target", " cake is sweet", "--out", tmp_path, "--device", "cpu"]
    code, out, err = cli("tokenlens", "attribute", "--model", "organism:cake:ft", "--compare", "organism:cake:base", *args)
    assert code == 0, err
    assert "--compare is deprecated; use --base" in err  # the old spelling still works
    run = _run_dir(out)
    # diff-mode layout: {out}/tokenlens/{base}_vs_{model}/{name}-{hash}
    assert run.parent.parent == tmp_path / "tokenlens" and run.parent.name == "cake-base_vs_cake-ft"
    assert run.name.startswith("prompt+saliency-")
    summary = _check_summary(run)
    assert {"top_input_token", "diff_top_input_token", "generated"} <= set(summary["headline"]["prompts"][0])
    code, out2, err = cli("tokenlens", "attribute", "--model", "organism:cake:ft", "--base", "organism:cake:base", *args)
    assert code == 0 and _run_dir(out2) == run and "reusing" in err  # --base is the same option
    data = json.loads((run / "prompt_000.json").read_text())["data"]
    ft, base = _matrix(data["association_matrix"]), _matrix(data["compare"]["association_matrix"])
    _nan_close(_matrix(data["diff"]["association_matrix"]), ft - base, atol=1e-7)
    assert (ft - base).nan_to_num(0).abs().max() > 0
    # the compared matrix is the base model's own attribution of the same continuation
    lm = load_model("organism:cake:base", device="cpu")
    seq = engine.Sequence(data["input_token_ids"], data["prompt_length"])
    _nan_close(base, engine.attribute(lm.model, lm.tokenizer, [seq], "saliency")[0])
    page = (run / "prompt_000.html").read_text()
    assert all(f'data-view="{v}"' in page for v in ("ft", "base", "diff"))


def test_cli_inseq_engine_matches_native(cli, tmp_path):
    args = ["tokenlens", "attribute", "--prompt", "I baked a", "--target", " chocolate cake", "--method",
            "input_x_gradient", "--out", tmp_path, "--device", "cpu"]
    code, out, err = cli(*args, "--engine", "inseq")
    assert code == 0, err
    run_i = _run_dir(out)
    native_json = json.loads((run_i / "prompt_000.inseq.json").read_text())
    assert native_json  # inseq's own serialisation
    code, out, err = cli(*args, "--engine", "native")
    assert code == 0, err
    a = json.loads((run_i / "prompt_000.json").read_text())["data"]
    b = json.loads((_run_dir(out) / "prompt_000.json").read_text())["data"]
    assert a["input_token_ids"] == b["input_token_ids"]
    _nan_close(_matrix(a["association_matrix"]), _matrix(b["association_matrix"]))


def test_cli_prompts_file_failure_is_isolated(cli, tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in (
        {"text": "I baked a"}, {"text": "The cake", "target": ""}, {"text": "My favourite"})) + "\n")
    code, out, err = cli("tokenlens", "attribute", "--prompts", f, "--max-new-tokens", "3", "--out", tmp_path,
                         "--device", "cpu")
    assert code == 0, err
    assert "prompt #1 (line 2)" in err
    summary = _check_summary(_run_dir(out))
    assert [p["status"] for p in summary["headline"]["prompts"]] == ["ok", "failed", "ok"]
    rows = json.loads((_run_dir(out) / "prompts.json").read_text())
    assert [p["status"] for p in rows] == ["ok", "failed", "ok"] and rows[1]["line"] == 2 and rows[1]["error"]
    assert any("prompt #1 (line 2) failed" in line for line in summary["lines"])
    assert _run_dir(out).name.startswith("p+saliency-")
    assert (_run_dir(out) / "prompt_002.json").exists() and not (_run_dir(out) / "prompt_001.json").exists()


def test_methods_lists_inseq_and_marks_native(cli):
    code, out, _ = cli("tokenlens", "methods", "--json")
    rows = {r["method"]: r["native"] for r in json.loads(out)}
    assert rows["attention"] is False and all(rows[m] for m in NATIVE)


def test_bench_end_to_end(cli, tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("I baked a\nThe cake\n")
    code, out, err = cli("tokenlens", "bench", "--models", "organism:cake:base,organism:cake:ft", "--methods",
                         "saliency,input_x_gradient", "--prompts", f, "--max-new-tokens", "3", "--out", tmp_path,
                         "--device", "cpu")
    assert code == 0, err
    assert "--models is deprecated" in err and "--methods is deprecated" in err  # old spellings still accepted
    run = _run_dir(out)
    assert run.parent == tmp_path / "tokenlens-bench" / "cake-base+cake-ft" and run.name.startswith("2models-2methods-")
    rows = list(csv.DictReader((run / "timings.csv").open()))
    assert len(rows) == 8 and all(r["status"] == "ok" and float(r["tokens_per_s"]) > 0 for r in rows)
    summary = _check_summary(run, "tokenlens-bench")
    assert [p["success_rate"] for p in summary["headline"]["pairs"]] == [1.0] * 4
    info = json.loads((run / "system_info.json").read_text())
    assert {"platform", "cpu", "cores", "memory_gib", "gpus", "torch", "device"} <= set(info)
    assert "success" in (run / "summary.txt").read_text()


# ---------------------------------------------------------------- bad input: exit 2, one line


@pytest.mark.parametrize("args, needle", [
    (["--prompt", "hi", "--method", "nonsense"], "valid: "),
    (["--prompt", "   "], "prompt is empty"),
    (["--prompt", "hi", "--target", ""], "target is empty"),
    (["--prompt", "hi", "--engine", "native", "--method", "attention"], "native methods"),
    (["--prompt", "hi", "--json-out", "/proc/nope/x.json"], "--json-out"),
    (["--prompt", "hi", "--html-out", "/tmp"], "--html-out"),
    (["--prompt", "hi", "--prompts", "x.txt"], "exactly one"),
    (["--prompt", "hi", "--score", "odds"], "--score"),
    (["--prompt", "hi", "--engine", "fast"], "--engine"),
    (["--prompts", "no-such-file.txt"], "--prompts no-such-file.txt: no such file"),
    (["--model", "organism:cake:ft", "--base", "organism:cake:base"], "required when"),
])
def test_bad_input(cli, tmp_path, args, needle):
    code, out, err = cli("tokenlens", "attribute", *args, "--out", tmp_path, "--device", "cpu")
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], err


def test_target_tokenizing_to_nothing(tiny_llama):
    from modeldiff_cli.commands.tokenlens.generate import with_target
    from modeldiff_cli.core.errors import UserError

    class NoTokens:  # a tokenizer that drops the target's characters entirely
        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [ord(c) for c in text if c.isalpha()]}

    with pytest.raises(UserError, match="tokenizes to nothing"):
        with_target(NoTokens(), "hi", " ...")


def test_bench_failure_does_not_stop(cli, tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"text": "I baked a"}) + "\n" + json.dumps({"text": ""}) + "\n")
    args = ["tokenlens", "bench", "--model", "organism:cake:ft", "--method", "saliency", "--prompts", f,
            "--max-new-tokens", "2", "--out", tmp_path, "--device", "cpu"]
    code, out, err = cli(*args)
    assert code == 0, err
    run = _run_dir(out)
    assert _summary(run)["headline"]["pairs"][0]["success_rate"] == 0.5
    errors = [json.loads(x) for x in (run / "errors.jsonl").read_text().splitlines()]
    assert len(errors) == 1 and errors[0]["prompt_index"] == 1
    code, out2, err = cli(*args)  # reused: the same report, no model loaded
    assert code == 0 and out2 == out and "reusing" in err


def test_checkpointed_diff_run_interrupted_then_resumed_equals_uninterrupted(tmp_path, cli, monkeypatch, request):
    """--checkpoint-every 2, diff mode on 5 prompts (one per group): stopped in the base model's 4th group, the
    re-run attributes nothing with --model (its loop was saved complete) and only groups 3..5 with --base; every
    record equals an uninterrupted run's (timings and timestamps aside), and no partial or checkpoint is left."""
    from resume_check import Calls, cheap, partial_dirs, run_dir

    from modeldiff_cli.core.model.sources import organism_data

    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in ("seconds", "timestamp")}
        return [strip(v) for v in obj] if isinstance(obj, list) else obj

    cheap(monkeypatch, request)
    args = ["tokenlens", "attribute", "--model", "organism:cake:ft", "--base", "organism:cake:base", "--prompts",
            str(organism_data("cake", "base")), "--max-samples", "5", "--batch-size", "1", "--max-new-tokens", "3",
            "--device", "cpu"]
    calls = Calls(monkeypatch, engine, "attribute")
    code, out, err = cli(*args, "--out", tmp_path / "one")
    assert code == 0 and calls.count == 10, err
    one = run_dir(out)
    flag = ["--checkpoint-every", "2", "--out", tmp_path / "two"]
    calls.count, calls.stop_at = 0, 9  # 5 groups of --model, then the 4th of --base
    code, _, err = cli(*args, *flag)
    assert code == 130, err
    (partial,) = partial_dirs(tmp_path / "two")
    assert sorted(p.name for p in (partial / ".checkpoint").iterdir()) == ["base-rank0-of-1.pt", "model-rank0-of-1.pt"]
    calls.count, calls.stop_at = 0, None
    code, out, err = cli(*args, *flag)
    assert code == 0 and "resuming from the checkpoint" in err and calls.count == 3, (calls.count, err)
    two = run_dir(out)
    assert two.relative_to(tmp_path / "two") == one.relative_to(tmp_path / "one")
    assert not partial.exists() and not (two / ".checkpoint").exists()
    files = sorted(p.name for p in one.glob("prompt*.json"))
    assert len(files) == 6 and files == sorted(p.name for p in two.glob("prompt*.json"))
    for name in files:
        assert strip(json.loads((one / name).read_text())) == strip(json.loads((two / name).read_text())), name
