"""Run directories (determinism, reuse, overwrite, partial clean-up), the tensor cache, the writers, tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from modeldiff_cli.commands.attribute.cache import TensorCache
from modeldiff_cli.core.data.tokens import consolidation_key, display_token, is_punctuation, visible
from modeldiff_cli.core.errors import UserError
from modeldiff_cli.core.spine import artifacts
from modeldiff_cli.core.spine.rundir import config_hash, run_directory, slug

CFG = {"model": "a", "top_k": 10}


def test_same_config_same_dir_and_reuse(tmp_path):
    with run_directory(tmp_path, ["m", "run1"], CFG, command="t") as run:
        assert not run.reused and run.work != run.path and run.work.name.startswith(".run1.partial")
        artifacts.write_json(run.file("x.json"), {"v": 1})
    assert (tmp_path / "m" / "run1" / "x.json").exists()
    meta = json.loads((tmp_path / "m" / "run1" / "run_metadata.json").read_text())
    assert meta["status"] == "complete" and meta["config"] == CFG
    with run_directory(tmp_path, ["m", "run1"], dict(CFG), command="t") as run:
        assert run.reused and run.path == tmp_path / "m" / "run1"
    assert config_hash(CFG) == config_hash({"top_k": 10, "model": "a"})


def test_conflicting_config_refused_unless_overwrite(tmp_path):
    with run_directory(tmp_path, ["r"], CFG, command="t") as run:
        artifacts.write_json(run.file("old.json"), {})
    with pytest.raises(UserError, match=r"different configuration \(top_k\).*--overwrite"):
        with run_directory(tmp_path, ["r"], {**CFG, "top_k": 5}, command="t"):
            pass
    with run_directory(tmp_path, ["r"], {**CFG, "top_k": 5}, command="t", overwrite=True) as run:
        assert not run.reused
        artifacts.write_json(run.file("new.json"), {})
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["new.json", "run_metadata.json"]


def test_failure_leaves_no_complete_looking_dir(tmp_path):
    with pytest.raises(RuntimeError):
        with run_directory(tmp_path, ["r"], CFG, command="t") as run:
            artifacts.write_json(run.file("half.json"), {})
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_resumable_run_then_plain_run_leaves_no_partial(tmp_path):
    """An interrupted --checkpoint-every run keeps .r.partial (to resume); completing the same configuration
    without the flag removes it, so nothing stale is left beside the complete run."""
    with pytest.raises(RuntimeError):
        with run_directory(tmp_path, ["r"], CFG, command="t", resumable=True) as run:
            artifacts.write_json(run.file("checkpoint.json"), {})
            raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == [".r.partial"]
    with run_directory(tmp_path, ["r"], CFG, command="t") as run:
        assert run.work.name.startswith(".r.partial-")
        artifacts.write_json(run.file("x.json"), {})
    assert [p.name for p in tmp_path.iterdir()] == ["r"]
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["run_metadata.json", "x.json"]


def test_reuse_reports_a_run_made_by_other_code(tmp_path, cli):
    """run_metadata.json records the code digest; a run reused under other code says so (and is still reused),
    one made by this code says nothing."""
    from modeldiff_cli.core.spine.rundir import code_digest

    with run_directory(tmp_path, ["r"], CFG, command="t"):
        pass
    meta_path = tmp_path / "r" / "run_metadata.json"
    meta = json.loads(meta_path.read_text())
    assert meta["code_digest"] == code_digest() and len(code_digest()) == 16
    with run_directory(tmp_path, ["r"], CFG, command="t") as run:
        assert run.reused and run.other_code is None
    meta_path.write_text(json.dumps({**meta, "code_digest": "0123456789abcdef"}))
    with run_directory(tmp_path, ["r"], CFG, command="t") as run:
        assert run.reused and run.other_code == "0123456789abcdef"
    code, out, err = cli("info", "--out", tmp_path / "runs")
    assert code == 0 and "other modeldiff code" not in err
    run_dir = out.strip().splitlines()[-1]
    info_meta = json.loads((Path(run_dir) / "run_metadata.json").read_text())
    (Path(run_dir) / "run_metadata.json").write_text(json.dumps({**info_meta, "code_digest": "feedfacefeedface"}))
    code, out2, err = cli("info", "--out", tmp_path / "runs")
    said = " ".join(err.split())  # the console wraps long lines
    assert code == 0 and "reusing" in said and "made by other modeldiff code (code digest feedfacefeedface" in said, err
    assert out2.strip().splitlines()[-1] == run_dir


def test_foreign_directory_refused(tmp_path):
    (tmp_path / "r").mkdir()
    with pytest.raises(UserError, match="not a complete modeldiff run"):
        with run_directory(tmp_path, ["r"], CFG, command="t"):
            pass


def test_slug():
    assert slug("org/model") == "org--model"
    assert slug("a b:c") == "a-b-c"


def test_cache_roundtrip_and_mismatch(tmp_path):
    cache = TensorCache(tmp_path)
    key = {"model": "abc", "data": "123", "layer": 3}
    assert cache.get("h", key) is None
    cache.put("h", key, {"h": torch.arange(6.0).reshape(2, 3)})
    assert torch.equal(cache.get("h", dict(key))["h"], torch.arange(6.0).reshape(2, 3))
    with pytest.raises(UserError, match="differs in layer"):
        cache.get("h", {**key, "layer": 4})


def test_writers_are_atomic_and_clean(tmp_path):
    p = artifacts.write_json(tmp_path / "a" / "b.json", {"x": float("nan"), "t": torch.tensor([1, 2])})
    assert json.loads(p.read_text()) == {"x": None, "t": [1, 2]}
    artifacts.write_csv(tmp_path / "c.csv", [{"a": 1, "b": 2}])
    assert (tmp_path / "c.csv").read_text().splitlines() == ["a,b", "1,2"]
    artifacts.write_npz(tmp_path / "m.npz", x=torch.ones(2).numpy())
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".")] == []
    with pytest.raises(UserError, match="malformed JSON"):
        (tmp_path / "bad.json").write_text("{")
        artifacts.read_json(tmp_path / "bad.json")


@pytest.mark.parametrize(
    "raw,shown", [("Ġcake", " cake"), ("Ċ", "\n"), ("ĊĊ", "\n\n"), ("▁cake", " cake"), ("<GN>", "<GN>"), ("Ã©", "é")]
)
def test_display_token(raw, shown):
    assert display_token(raw) == shown


def test_undecodable_byte_fragments_filtered():
    """A lone byte of a multi-byte character (GPT-2 spelling 'Ã' = 0xC3) decodes to U+FFFD and is dropped by
    default from both token views; whole characters ('Ã©' = é) and ASCII stay."""
    from modeldiff_cli.core.data.token_views import token_view
    from modeldiff_cli.core.data.tokens import is_undecodable
    from modeldiff_cli.core.spine.ingredients import TokenFilter

    raw = ["Ġcake", "Ã", "Ã©", "Ġ"]
    assert [is_undecodable(display_token(r)) for r in raw] == [False, True, False, False]
    view = token_view(raw, set(), drop_punctuation=False, drop_special=False, consolidate_case=False,
                      drop_undecodable=True)
    assert view.keep.tolist() == [True, False, True, True] and view.filters["drop_undecodable"] is True
    kept = token_view(raw, set(), drop_punctuation=False, drop_special=False, consolidate_case=False)
    assert kept.keep.all()

    class Tok:
        all_special_ids: list[int] = []

        def convert_ids_to_tokens(self, ids):
            return [raw[i] for i in ids]

    def keep_mask(tok, n, **flags):
        return TokenFilter(**{"drop_punctuation": False, "drop_special": True, "drop_undecodable": True, **flags}).keep_mask(tok, n)

    assert keep_mask(Tok(), 4, drop_punctuation=False, drop_special=False, drop_undecodable=True) == [True, False, True, True]
    assert keep_mask(Tok(), 4, drop_punctuation=True, drop_special=False, drop_undecodable=False) == [True, True, True, False]
    assert TokenFilter().drop_undecodable  # the default drops them


def test_punctuation_and_consolidation():
    assert is_punctuation(" ,") and is_punctuation("\n") and is_punctuation("“")
    assert not is_punctuation(" cake") and not is_punctuation("5")
    assert consolidation_key(" Cake") == consolidation_key("cake") == "cake"
    assert visible("a\nb") == "a\\nb"
