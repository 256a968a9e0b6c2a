"""`interpret` on a held-out-style pair (issue 22): a 3-layer Llama whose fine-tune learned an astronomy
vocabulary (6 planted words) from prompts full of glue words the base already knew (" across", " tracks",
" studies"). The strongest difference direction must list >= 5 of the 6 planted words in its top 10 tokens,
say that ft carries it, and be named from its own tokens.

The pair (tests/heldout_pairs.py, ~15 s on one core) is built once into the organism cache, under a name keyed
by the builder's source, so a rerun reuses it."""

from __future__ import annotations

import json
from pathlib import Path

import heldout_pairs
import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def astronomy() -> Path:
    return heldout_pairs.ensure_cached("astronomy")  # built before the first test by conftest's test_organisms


def test_astronomy_pair_strongest_direction_holds_the_planted_words(astronomy, cli, tmp_path):
    truth = json.loads((astronomy / "ground_truth.json").read_text())
    code, _, err = cli("interpret", "--base", astronomy / "base", "--ft", astronomy / "ft",
                       "--categories", astronomy / "categories.json", "--out", tmp_path, "--no-crosscoder",
                       "--causal-samples", "12", "--random-directions", "32", "--max-vectors", "4000")
    assert code == 0, err
    run = next((tmp_path / "interpret").glob("*/*"))
    feats = json.loads((run / "features.json").read_text())["features"]
    top = feats[0]
    assert top["kind"] == "direction" and top["layer"] == truth["layers"] - 1, top["name"]
    assert max(top["categories"], key=top["categories"].get) == "astronomy", top["categories"]
    hits = heldout_pairs.planted_hits(top["tokens"], truth["planted_words"])
    # the vector's own logit lens holds none of them: the reading is what finds them
    assert hits >= 5, (hits, top["tokens"][:10], top["lens_tokens"][:10])
    # ft added the vocabulary: ft's activations carry the direction (the old rule could say base-only)
    assert top["side"] in ("ft-only", "ft-mostly") and top["reach"]["ft"] > abs(top["reach"]["base"]), top["reach"]
    words = top["name"].split(" - ")[0].split(" / ")
    assert len(set(words) & set(truth["planted_words"])) >= 2, top["name"]
    assert all(w in [t.strip() for t in top["tokens"]] for w in words), (top["name"], top["tokens"])
