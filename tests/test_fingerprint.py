"""Whole-file digests: an inner tensor change is seen, the memo is used and invalidated, bad caches are ignored."""

from __future__ import annotations

import hashlib
import json
import os
import struct

import pytest

from modeldiff_cli.core.spine import fingerprint
from modeldiff_cli.core.spine.fingerprint import cache_file, file_digest, tree_fingerprint

PAST_NS = 1_600_000_000 * 10**9  # an mtime well outside the racy window


@pytest.fixture(autouse=True)
def digest_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELDIFF_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "digests.json"


def age(*paths, ns: int = PAST_NS) -> None:
    for p in paths:
        os.utime(p, ns=(ns, ns))


def count_hashes(monkeypatch) -> list:
    """Record every full read of a file by ``file_digest``."""
    seen: list = []
    real = fingerprint.sha256_file

    def counting(path):
        seen.append(path)
        return real(path)

    monkeypatch.setattr(fingerprint, "sha256_file", counting)
    return seen


def tensor_span(path, name: str) -> tuple[int, int]:
    """Byte range of one tensor inside a safetensors file (from its JSON header)."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    lo, hi = header[name]["data_offsets"]
    return 8 + n + lo, 8 + n + hi


def test_inner_tensor_change_in_a_large_checkpoint_changes_the_fingerprint(tmp_path):
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=32000, hidden_size=512, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=8, num_key_value_heads=8, tie_word_embeddings=False)
    with torch.device("meta"):  # skip the slow random init: the bytes only need to be fixed
        model = LlamaForCausalLM(cfg)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.fill_(0.01 * i)
    root = tmp_path / "model"
    model.save_pretrained(root)
    weights = root / "model.safetensors"
    size = weights.stat().st_size
    assert size > 64 << 20  # past the old head+tail shortcut
    name = "model.layers.1.mlp.down_proj.weight"
    lo, hi = tensor_span(weights, name)
    assert lo > 4 << 20 and hi < size - (4 << 20)  # the change lies outside the first and last 4 MB

    age(*root.iterdir())
    before = tree_fingerprint(root)
    assert tree_fingerprint(root) == before  # memoised, same answer
    with torch.no_grad():
        model.get_parameter(name)[3, 5] += 1.0
    model.save_pretrained(root)  # re-saved in place
    mtime = weights.stat().st_mtime_ns
    assert tree_fingerprint(root) != before
    # even a tool that restores the old mtime (same size) cannot make the memo lie: ctime moved on
    age(weights, ns=mtime)
    assert tree_fingerprint(root) != before


def test_digest_is_the_whole_file_sha256_and_memo_skips_rereads(tmp_path, monkeypatch, digest_cache):
    f = tmp_path / "w.bin"
    data = os.urandom(3 << 20)
    f.write_bytes(data)
    age(f)
    seen = count_hashes(monkeypatch)
    assert file_digest(f) == hashlib.sha256(data).hexdigest()
    assert file_digest(f) == hashlib.sha256(data).hexdigest()
    assert len(seen) == 1  # the second call is a memo hit
    assert str(f.resolve()) in json.loads(digest_cache.read_text())["entries"]
    age(f, ns=PAST_NS + 10**9)  # a new mtime invalidates the memo
    file_digest(f)
    assert len(seen) == 2


def test_recently_modified_files_are_not_memoised(tmp_path, monkeypatch, digest_cache):
    f = tmp_path / "fresh.json"
    f.write_text("{}")
    seen = count_hashes(monkeypatch)
    file_digest(f)
    file_digest(f)
    assert len(seen) == 2 and not digest_cache.exists()


@pytest.mark.parametrize("garbage", ["{not json", "[1, 2]", '{"entries": 3}', '{"entries": {"x": 5}}'])
def test_corrupt_cache_is_ignored_and_replaced(tmp_path, digest_cache, garbage):
    digest_cache.parent.mkdir(parents=True)
    digest_cache.write_text(garbage)
    f = tmp_path / "a.txt"
    f.write_text("hello")
    age(f)
    assert file_digest(f) == hashlib.sha256(b"hello").hexdigest()
    assert str(f.resolve()) in json.loads(digest_cache.read_text())["entries"]


def test_stale_entry_with_wrong_identity_is_not_trusted(tmp_path, digest_cache):
    f = tmp_path / "a.txt"
    f.write_text("hello")
    age(f)
    file_digest(f)
    data = json.loads(digest_cache.read_text())
    data["entries"][str(f.resolve())]["id"]["size"] = 999
    data["entries"][str(f.resolve())]["sha256"] = "0" * 64
    digest_cache.write_text(json.dumps(data))
    assert file_digest(f) == hashlib.sha256(b"hello").hexdigest()


def test_unwritable_cache_means_no_memo(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("MODELDIFF_CACHE_DIR", str(blocker / "sub"))
    f = tmp_path / "a.txt"
    f.write_text("hello")
    age(f)
    assert file_digest(f) == hashlib.sha256(b"hello").hexdigest()
    assert cache_file() == blocker / "sub" / "digests.json"


def test_hub_blob_symlink_uses_the_blob_name_without_reading(tmp_path, monkeypatch):
    data = b"weights"
    sha = hashlib.sha256(data).hexdigest()
    blobs = tmp_path / "models--org--m" / "blobs"
    snap = tmp_path / "models--org--m" / "snapshots" / "abc"
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    (blobs / sha).write_bytes(data)
    (snap / "model.safetensors").symlink_to(blobs / sha)
    seen = count_hashes(monkeypatch)
    assert file_digest(snap / "model.safetensors") == sha and not seen
    (blobs / "0123abcd").write_text("{}")  # a git-sha1 blob (small file): hashed as usual
    (snap / "config.json").symlink_to(blobs / "0123abcd")
    assert file_digest(snap / "config.json") == hashlib.sha256(b"{}").hexdigest() and seen


def test_tree_fingerprint_covers_relevant_files_and_names(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "tokenizer.model").write_bytes(b"tok")
    base = tree_fingerprint(tmp_path)
    assert len(base) == 16
    (tmp_path / "README.md").write_text("ignored")
    (tmp_path / ".lock.json").write_text("hidden")
    assert tree_fingerprint(tmp_path) == base
    (tmp_path / "vocab.tiktoken").write_bytes(b"v")
    assert tree_fingerprint(tmp_path) != base
    (tmp_path / "vocab.tiktoken").rename(tmp_path / "other.tiktoken")
    assert tree_fingerprint(tmp_path) != base
