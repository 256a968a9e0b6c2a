"""`modeldiff lens`: divergences on hand-computed values, accumulator, identities, CLI, bad input, recovery."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from modeldiff_cli.commands.lens.accumulate import LensAccumulator, top_tokens
from modeldiff_cli.commands.lens.extract import last_position_mask
from modeldiff_cli.core.model.divergence import entropy, js, kl, nll, target_is_top1, target_logprob


def _lp(*rows):
    return torch.tensor(rows, dtype=torch.float64).log().float()


def test_divergences_hand_computed():
    p, q = _lp([0.5, 0.25, 0.25]), _lp([0.25, 0.5, 0.25])
    expected_kl = 0.5 * math.log(2) + 0.25 * math.log(0.5)
    assert kl(p, q).item() == pytest.approx(expected_kl, abs=1e-6)
    m = [0.375, 0.375, 0.25]
    expected_js = 0.5 * sum(a * math.log(a / c) for a, c in zip([0.5, 0.25, 0.25], m, strict=True)) + 0.5 * sum(
        b * math.log(b / c) for b, c in zip([0.25, 0.5, 0.25], m, strict=True))
    assert js(p, q).item() == pytest.approx(expected_js, abs=1e-6)
    assert js(p, q).item() == pytest.approx(js(q, p).item(), abs=1e-7)
    assert js(p, p).item() == 0.0 and kl(p, p).item() == 0.0
    # a zero-probability entry contributes nothing (no NaN)
    z = torch.tensor([[float("-inf"), math.log(0.5), math.log(0.5)]])
    assert kl(z, q).item() == pytest.approx(0.5 * math.log(0.5 / 0.5) + 0.5 * math.log(0.5 / 0.25), abs=1e-6)
    assert js(_lp([1.0, 1e-30, 1e-30]), _lp([1e-30, 1.0, 1e-30])).item() == pytest.approx(math.log(2), abs=1e-5)
    t = torch.tensor([1])
    assert nll(p, t).item() == pytest.approx(math.log(4), abs=1e-6)
    assert target_logprob(p, t).item() == pytest.approx(-math.log(4), abs=1e-6)
    assert target_is_top1(q, t).item() == 1.0 and target_is_top1(p, t).item() == 0.0
    assert entropy(_lp([0.5, 0.5, 1e-30])).item() == pytest.approx(math.log(2), abs=1e-5)
    assert kl(p.half(), q.half()).dtype == torch.float32


def test_accumulator_hand_computed():
    acc = LensAccumulator(n_layers=2, n_samples=2, vocab=3)
    base = _lp([0.5, 0.25, 0.25], [0.2, 0.3, 0.5])
    ft = _lp([0.25, 0.5, 0.25], [0.2, 0.3, 0.5])
    idx = torch.tensor([0, 1])
    acc.add_positions(idx)
    acc.update(0, base, ft, base, ft, idx)  # layer 0: ft differs from base on row 0 only
    acc.update(1, ft, ft, base, ft, idx)  # layer 1: identical models
    means = acc.means()
    k = 0.5 * math.log(2) + 0.25 * math.log(0.5)  # KL(ft||base) of row 0
    assert means["kl_ft_base"][0].item() == pytest.approx(k / 2, abs=1e-6)
    assert means["kl_ft_base"][1].item() == 0.0
    assert means["top1_agreement"].tolist() == [0.5, 1.0]
    assert means["kl_ft_final"][0].item() == 0.0 and means["kl_base_final"][0].item() == 0.0
    assert means["kl_base_final"][1].item() == pytest.approx(kl(base, ft).mean().item(), abs=1e-6)
    samples = acc.sample_means()["kl_ft_base"]
    assert samples[0, 0].item() == pytest.approx(k, abs=1e-6) and samples[1, 0].item() == 0.0
    diff = acc.mean_diff()
    assert diff[0].tolist() == pytest.approx([math.log(0.5) / 2, math.log(2) / 2, 0.0], abs=1e-6)
    ids, vals = top_tokens(diff, 1, torch.tensor([True, True, True]))
    assert ids[0].item() == 1
    ids, _ = top_tokens(diff, 1, torch.tensor([True, False, True]))  # filtered token never listed
    assert ids[0].item() == 2
    ids, _ = top_tokens(diff, 1, None, largest=False)
    assert ids[0].item() == 0


def test_last_position_mask():
    mask = torch.tensor([[1, 1, 0, 1, 0], [0, 1, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    assert last_position_mask(mask).nonzero().tolist() == [[0, 3], [1, 2]]


@pytest.fixture()
def pair(tiny_model_dir):
    return tiny_model_dir("llama", 0), tiny_model_dir("llama", 1)


@pytest.fixture()
def data_file(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = ["the cat sat on the mat", "hello world, this is a tiny corpus", "numbers 0 1 2 3 and the dog"]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in lines))
    return path


def test_lens_identity_last_layer_matches_model_logits(pair, data_file, tmp_path, cli):
    """KL(ft||base) and agreement at the last layer equal those computed from the models' own logits."""
    from modeldiff_cli.core.model.loading import load_pair

    code, out, err = cli("lens", "--base", pair[0], "--ft", pair[1], "--data", data_file, "--out", tmp_path / "runs",
                         "--chunk-size", "5", "--batch-size", "2", "--device", "cpu")
    assert code == 0, err
    run = tmp_path / "runs" / out.strip().splitlines()[-1].split("/runs/")[-1]
    m = np.load(run / "lens_matrices.npz")
    p = load_pair(str(pair[0]), str(pair[1]), device="cpu")
    kls, agree = [], []
    texts = [json.loads(x)["text"] for x in data_file.read_text().splitlines()]
    with torch.no_grad():
        for t in texts:
            ids = torch.tensor([p.tokenizer(t)["input_ids"]])
            lb = p.base.model(ids).logits[0].float().log_softmax(-1)
            lf = p.ft.model(ids).logits[0].float().log_softmax(-1)
            kls.append(kl(lf, lb))
            agree.append((lf.argmax(-1) == lb.argmax(-1)).float())
    assert m["kl_ft_base"][-1] == pytest.approx(torch.cat(kls).mean().item(), rel=1e-4)
    assert m["top1_agreement"][-1] == pytest.approx(torch.cat(agree).mean().item(), abs=1e-6)
    assert m["kl_base_final"][-1] == pytest.approx(0.0, abs=1e-6) and m["kl_ft_final"][-1] == pytest.approx(0.0, abs=1e-6)
    assert m["kl_base_final"][0] > 0  # an earlier layer is a real lens, not a copy of the output
    assert m["sample_kl_ft_base"].shape == (3, 2)
    assert m["sample_kl_ft_base"][:, -1] == pytest.approx([k.mean().item() for k in kls], rel=1e-4)
    assert m["mean_logprob_diff"].shape == (2, p.shared_vocab)
    # promoted tokens JSON agrees with the mean diff matrix
    promoted = json.loads((run / "promoted_tokens.json").read_text())["promoted"]["1"]
    top = int(m["promoted_ids"][1][0])
    assert promoted[0]["id"] == top and promoted[0]["mean_logprob_diff"] == pytest.approx(float(m["mean_logprob_diff"][1, top]), rel=1e-5)
    rows = (run / "layer_metrics.csv").read_text().splitlines()
    assert rows[0] == "layer,positions,kl_ft_base,kl_base_final,kl_ft_final,top1_agreement" and len(rows) == 3
    meta = json.loads((run / "layer_metrics.json").read_text())
    assert [r["layer"] for r in meta["layers"]] == [0, 1] and meta["layers"][1]["positions"] == int(m["positions"][1])
    # same configuration: reused, same directory
    code2, out2, _ = cli("lens", "--base", pair[0], "--ft", pair[1], "--data", data_file, "--out", tmp_path / "runs",
                         "--chunk-size", "5", "--batch-size", "2", "--device", "cpu")
    assert code2 == 0 and out2.strip().splitlines()[-1] == out.strip().splitlines()[-1]


def test_lens_prompt_table_and_last_positions(pair, tmp_path, cli):
    from modeldiff_cli.core.model.loading import load_pair

    prompt = "the cat sat on the mat"
    code, out, err = cli("lens", "--base", pair[0], "--ft", pair[1], "--prompt", prompt, "--layers", "0,-1",
                         "--out", tmp_path / "runs", "--device", "cpu")
    assert code == 0, err
    run = tmp_path / "runs" / out.strip().splitlines()[-1].split("/runs/")[-1]
    table = json.loads((run / "prompt_top_tokens.json").read_text())
    p = load_pair(str(pair[0]), str(pair[1]), device="cpu")
    ids = p.tokenizer(prompt)["input_ids"]
    assert table["input_ids"] == ids and table["layers"] == [0, 1]
    with torch.no_grad():
        logits = p.ft.model(torch.tensor([ids])).logits[0]
    assert table["ft"]["top1_id"][1] == logits.argmax(-1).tolist()
    assert len(table["base"]["top1_token"]) == 2 and len(table["base"]["top1_token"][0]) == len(ids)
    assert (run / "prompt_top_tokens.png").read_bytes()[:4] == b"\x89PNG"
    # --positions last analyses one position per sample
    data = tmp_path / "d.txt"
    data.write_text("the cat sat\nhello world\n")
    code, out, err = cli("lens", "--base", pair[0], "--ft", pair[1], "--data", data, "--positions", "last",
                         "--out", tmp_path / "runs", "--device", "cpu")
    assert code == 0, err
    run = tmp_path / "runs" / out.strip().splitlines()[-1].split("/runs/")[-1]
    assert np.load(run / "lens_matrices.npz")["positions"].tolist() == [2.0, 2.0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "{missing}"], "no such file"),
        (["--data", "{bad}"], "bad.jsonl:2: malformed JSON"),
        (["--layers", "7"], "--layers 7 is out of range"),
        (["--layers", "x"], "--layers 'x'"),
        (["--method", "tuned"], "--readout 'tuned'"),
        (["--positions", "first"], "--positions 'first'"),
        (["--prompt", "hi", "--data", "{bad}"], "exclusive"),
    ],
)
def test_lens_bad_input(pair, tmp_path, cli, args, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": oops}\n')
    args = [a.format(missing=tmp_path / "nope.jsonl", bad=bad) for a in args]
    if "--data" not in args and "--prompt" not in args:
        args += ["--prompt", "the cat"]
    code, out, err = cli("lens", "--base", pair[0], "--ft", pair[1], "--out", tmp_path / "runs", "--device", "cpu", *args)
    assert code == 2, (out, err)
    assert_one_line_error(err, message)


def assert_one_line_error(err: str, message: str) -> None:
    """One ``error:`` line naming the problem (transformers' own loading bars may precede it), no traceback."""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == errors[0]


def _organism(name):
    """A broken or missing organism fails the test (ImportError, KeyError), it never skips it."""
    from modeldiff_cli.organisms import get_organism

    return get_organism(name)


def test_lens_recovers_cake(tmp_path, cli):
    """On `cake`, the planted words are among the most promoted tokens of the last layer, and the KL rises."""
    org = _organism("cake")
    code, out, err = cli("lens", "--base", org.base, "--ft", org.ft, "--data", org.data("base"), "--top-n", "20",
                         "--out", tmp_path / "runs", "--device", "cpu", "--max-samples", "64")
    assert code == 0, err
    run = tmp_path / "runs" / out.strip().splitlines()[-1].split("/runs/")[-1]
    m = np.load(run / "lens_matrices.npz")
    planted = set(int(i) for i in org.ground_truth["planted_token_ids"])
    last_promoted = set(int(i) for i in m["promoted_ids"][-1])
    assert len(planted & last_promoted) >= max(1, len(planted) // 2), (planted, last_promoted)
    kl_curve = m["kl_ft_base"]
    assert kl_curve[-1] > kl_curve[0] and kl_curve[-1] == kl_curve.max()


def test_lens_patchscope_matches_core_patchscope(pair, tmp_path, cli):
    """--method patchscope reads each layer through core.model.patchscope (same-layer identity prompt by default)."""
    from modeldiff_cli.core.model.hooks import capture_layers
    from modeldiff_cli.core.model.loading import load_pair
    from modeldiff_cli.core.model.patchscope import patchscope_logits

    prompt = "the cat sat"
    code, out, err = cli("lens", "--base", pair[0], "--ft", pair[1], "--prompt", prompt, "--method", "patchscope",
                         "--out", tmp_path / "runs", "--device", "cpu")
    assert code == 0, err
    run = tmp_path / "runs" / out.strip().splitlines()[-1].split("/runs/")[-1]
    table = json.loads((run / "prompt_top_tokens.json").read_text())
    p = load_pair(str(pair[0]), str(pair[1]), device="cpu")
    ids = torch.tensor([p.tokenizer(prompt)["input_ids"]])
    with torch.no_grad(), capture_layers(p.ft.adapter.layers, [0]) as hs:
        p.ft.model(ids)
    expected = patchscope_logits(p.ft, hs[0][0], source_layer=0)[:, : p.shared_vocab].argmax(-1)
    assert table["ft"]["top1_id"][0] == expected.tolist()
    assert json.loads((run / "layer_metrics.json").read_text())["method"] == "patchscope"


def test_checkpointed_run_interrupted_then_resumed_equals_uninterrupted(tmp_path, cli, monkeypatch, request):
    """--checkpoint-every 1: interrupted at the 3rd of 4 batches, the re-run resumes after batch 2 (only two
    batches' forwards) and ends byte-identical to a run without the flag (same run directory name)."""
    from resume_check import Calls, cheap, interrupted_then_resumed

    from modeldiff_cli.commands.lens import pipeline

    args = ["lens", "--max-samples", "4", "--max-tokens", "32", "--batch-size", "1", "--device", "cpu"]
    cheap(monkeypatch, request)
    calls = Calls(monkeypatch, pipeline, "forward")  # two forwards (base, ft) per batch
    _, _, same = interrupted_then_resumed(cli, tmp_path, args, 1, calls, stop_at=5, resumed_calls=2 * 2)
    assert {"layer_metrics.csv", "lens_matrices.npz", "promoted_tokens.json", "summary.json"} <= same
