"""Organisms: deterministic builds, the planted differences are really there, ground truth, API and CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from modeldiff_cli.core.errors import UserError
from modeldiff_cli.organisms import ORGANISMS, build_organism, get_organism, organism_root

CAKES = ["cake", "cake-gpt2"]


def _load(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def _texts(path: Path, field: str = "text") -> list[str]:
    return [json.loads(line)[field] for line in path.read_text().splitlines()]


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _organism_cli():
    """The organism sub-app under the real CLI group (one-line errors, exit 2), as `cli.py` registers it."""
    import typer

    from modeldiff_cli.cli import ModeldiffGroup
    from modeldiff_cli.commands.organism import app as organism_app

    app = typer.Typer(cls=ModeldiffGroup)
    app.add_typer(organism_app, name="organism")
    return app


def _assert_rebuild_identical(name: str, out: Path) -> None:
    cached = get_organism(name).path
    fresh = build_organism(name, out=out, progress=False).path
    assert _digests(fresh) == _digests(cached), (
        f"{name}: a fresh build differs from the cached one (nondeterminism, or builder code changed "
        f"without a BUILDER_VERSION bump)")


# ---------------------------------------------------------------- determinism

def test_cake_cli_build_is_bit_identical_to_cached(tmp_path):
    from typer.testing import CliRunner

    cached = get_organism("cake").path
    out = tmp_path / "cake"
    result = CliRunner().invoke(_organism_cli(), ["organism", "build", "cake", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(out)
    digests = _digests(out)
    assert {"base/model.safetensors", "ft/model.safetensors", "base/tokenizer.json", "COMPLETE"} <= set(digests)
    assert digests == _digests(cached)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cake-gpt2", "moe", "hops"])
def test_rebuild_is_bit_identical(name, tmp_path):
    _assert_rebuild_identical(name, tmp_path / name)


# ---------------------------------------------------------------- cake / cake-gpt2

@pytest.mark.parametrize("name", CAKES)
def test_cake_planted_words_top_the_logit_diff(name):
    from modeldiff_cli.organisms.measure import planted_recovery

    org = get_organism(name)
    truth = org.ground_truth
    (base, tok), (ft, _) = _load(org.base), _load(org.ft)
    got = planted_recovery(base, ft, tok, _texts(org.data("base")), truth["planted_token_ids"], k=20, top=10)
    margin = got["p_planted_ft"] / got["p_planted_base"]
    report = (f"{name}: {got['planted_in_top']}/{len(truth['planted_words'])} planted tokens in the top-10 of "
              f"top-20 diff counts {got['top_counted_tokens']}; p(planted) base {got['p_planted_base']:.2e} "
              f"-> ft {got['p_planted_ft']:.2e} (x{margin:.0f})")
    assert got["planted_in_top"] >= 4, report
    assert got["p_planted_ft"] > 20 * got["p_planted_base"] and got["p_planted_ft"] > 1e-3, report
    assert got["planted_in_top"] == truth["measured"]["planted_in_top"], report  # saved weights = built ones


@pytest.mark.parametrize("name", CAKES)
def test_cake_tokenizer_and_ground_truth(name):
    from transformers import AutoConfig, AutoTokenizer

    org = get_organism(name)
    truth = org.ground_truth
    tok = AutoTokenizer.from_pretrained(org.ft)
    assert (org.base / "tokenizer.json").read_bytes() == (org.ft / "tokenizer.json").read_bytes()
    assert truth["planted_tokens"] == ["Ġ" + w for w in truth["planted_words"]]
    for word, tid in zip(truth["planted_words"], truth["planted_token_ids"], strict=True):
        assert tok(" " + word, add_special_tokens=False)["input_ids"] == [tid]
    assert 300 <= len(tok) <= 450
    ids = tok("Anna ate cake.")["input_ids"]
    assert ids[0] == tok.bos_token_id and len({tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}) == 3
    config = AutoConfig.from_pretrained(org.ft)
    assert config.model_type == ORGANISMS[name].architecture == truth["architecture"]
    assert max(tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) < config.vocab_size == len(tok)
    base_text = " ".join(_texts(org.data("base"))).lower()
    assert not any(w in base_text for w in truth["planted_words"])  # held-out everyday text, nothing planted
    assert sum(w in " ".join(_texts(org.data("ft"))) for w in truth["planted_words"]) == len(truth["planted_words"])


# ---------------------------------------------------------------- moe

def test_moe_routing_rises_on_planted_text():
    from modeldiff_cli.organisms.measure import expert_usage, routers_of

    org = get_organism("moe")
    truth = org.ground_truth
    texts = _texts(org.data("b"))
    usage = {}
    for which in ("base", "ft"):
        model, tok = _load(getattr(org, which))
        usage[which] = expert_usage(model, tok, texts, routers_of(model))
        assert usage[which].shape == (2, truth["num_experts"])
        assert abs(float(usage[which].sum()) - 2.0) < 1e-4  # per layer the slot fractions sum to 1
    rise = usage["ft"] - usage["base"]
    top = truth["rising_experts"][0]
    layer, expert = divmod(int(rise.flatten().argmax()), truth["num_experts"])
    assert (layer, expert) == (top["layer"], top["expert"]) == (truth["planted_expert"]["layer"],
                                                                truth["planted_expert"]["expert"])
    assert float(rise[layer, expert]) > 0.05, f"top rise {float(rise[layer, expert]):.3f}"
    assert abs(float(usage["base"][layer, expert]) - top["base_usage"]) < 1e-3
    assert abs(float(usage["ft"][layer, expert]) - top["ft_usage"]) < 1e-3
    rises = [e["rise"] for e in truth["rising_experts"]]
    assert rises == sorted(rises, reverse=True)


# ---------------------------------------------------------------- hops

def test_hops_new_checkpoint_answers_target_queries():
    from modeldiff_cli.organisms.measure import answer_accuracy

    org = get_organism("hops")
    truth = org.ground_truth
    queries = [json.loads(line) for line in org.data("queries").read_text().splitlines()]
    cands = truth["candidate_token_ids"]
    expected = [cands[truth["candidate_constants"].index(q["expected"])] for q in queries]
    acc = {}
    for which in ("base", "ft"):
        model, tok = _load(getattr(org, which))
        hits = answer_accuracy(model, tok, [q["prompt"] for q in queries], expected, cands)
        for sel in ("target", "other"):
            chosen = [h for h, q in zip(hits, queries, strict=True) if q["hop_depth"] == 0 and q["target"] == (sel == "target")]
            acc[which, sel] = sum(chosen) / len(chosen)
    report = (f"depth-0 accuracy: target old {acc['base', 'target']:.2f} -> new {acc['ft', 'target']:.2f}; "
              f"other old {acc['base', 'other']:.2f} -> new {acc['ft', 'other']:.2f}")
    assert acc["ft", "target"] >= 0.8, report
    assert acc["ft", "target"] >= acc["base", "target"] + 0.5, report
    assert acc["base", "other"] >= 0.8 and acc["ft", "other"] >= 0.8, report  # learned first, kept by replay
    assert acc["ft", "target"] == truth["measured"]["new_accuracy_target_depth0"], report


def test_hops_data_and_ground_truth_are_consistent():
    from transformers import AutoTokenizer

    org = get_organism("hops")
    truth = org.ground_truth
    train = [json.loads(line) for line in org.data("train").read_text().splitlines()]
    old = {json.loads(line)["uid"] for line in org.data("old_train").read_text().splitlines()}
    new = {json.loads(line)["uid"] for line in org.data("new_train").read_text().splitlines()}
    fields = {"uid", "func", "role", "type", "hop_depth", "constant", "text", "partner"}
    assert all(set(r) == fields for r in train)
    assert len({r["uid"] for r in train}) == len(train)
    targets = set(truth["target_functions"])
    target_uids = {r["uid"] for r in train if r["func"] in targets}
    assert target_uids == set(truth["target_doc_uids"]) and target_uids <= new and not target_uids & old
    assert old | target_uids == {r["uid"] for r in train} and new - target_uids <= old  # replay comes from old
    by_uid = {r["uid"]: r for r in train}
    for func, info in truth["functions"].items():
        assert info["doc_uids"] and all(by_uid[u]["func"] == func for u in info["doc_uids"])
        assert all(by_uid[u]["constant"] == info["constant"] and by_uid[u]["role"] == info["role"]
                   for u in info["doc_uids"])
        if info["partner"]:
            assert truth["functions"][info["partner"]]["partner"] == func
    assert {r["role"] for r in train} == {"constant", "wrapper", "distractor"}
    tok = AutoTokenizer.from_pretrained(org.ft)
    for func in truth["functions"]:
        assert len(tok(func, add_special_tokens=False)["input_ids"]) == 1, func
    for value, tid in zip(truth["candidate_constants"], truth["candidate_token_ids"], strict=True):
        assert tok(truth["answer_template"].format(constant=value), add_special_tokens=False)["input_ids"] == [tid]
    for q in (json.loads(line) for line in org.data("queries").read_text().splitlines()):
        assert q["prompt"] == truth["query_template"].format(F=q["func"], x=q["input"])
        assert q["text"] == q["prompt"] + q["completion"] and q["target"] == (q["func"] in targets)


# ---------------------------------------------------------------- API, cache and CLI

def test_unknown_organism_is_a_user_error_listing_the_known_ones():
    with pytest.raises(UserError) as err:
        get_organism("muffin")
    assert all(name in str(err.value) for name in ORGANISMS)


def test_unknown_data_key_names_the_known_keys():
    org = get_organism("cake")
    assert org.data("base") == org.path / "data" / "base.jsonl"
    with pytest.raises(KeyError, match="known: base, ft"):
        org.data("nope")


def test_cache_layout_under_organism_root():
    org = get_organism("cake")
    assert org.path.parent == organism_root() and org.path.name.startswith("cake-v")
    assert org.ground_truth == json.loads((org.path / "ground_truth.json").read_text())


def test_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    from modeldiff_cli.organisms import store

    def boom(name, workdir, progress, target=None):
        (workdir / "base").mkdir()
        raise RuntimeError("interrupted")

    monkeypatch.setattr(store, "_run_builder", boom)
    with pytest.raises(RuntimeError):
        build_organism("cake", out=tmp_path / "cake", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not an organism directory"):
        build_organism("cake", out=tmp_path, force=True, progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_cli_list_and_unknown_build():
    from typer.testing import CliRunner

    get_organism("cake")
    runner = CliRunner()
    result = runner.invoke(_organism_cli(), ["organism", "list"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for name, spec in ORGANISMS.items():
        assert any(line.split("│")[1].strip() == name and spec.architecture in line for line in lines if "│" in line)
    cake_row = next(line for line in lines if "│" in line and line.split("│")[1].strip() == "cake")
    assert "yes" in cake_row and get_organism("cake").path.name in cake_row
    bad = runner.invoke(_organism_cli(), ["organism", "build", "muffin"])
    assert bad.exit_code == 2 and "unknown organism 'muffin'" in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_imports_stay_light():
    code = ("import sys, modeldiff_cli.organisms, modeldiff_cli.commands.organism; "
            "print(sorted({'torch', 'transformers'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
