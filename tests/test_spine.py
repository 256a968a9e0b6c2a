"""The command spine: options generated from dataclasses, the run layout, summary.json, reuse, fingerprints."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modeldiff_cli.core.errors import UserError
from modeldiff_cli.core.spine import command as spine
from modeldiff_cli.core.spine.command import Command, Fingerprints, Result
from modeldiff_cli.core.spine.compared import MODEL, Compared
from modeldiff_cli.core.spine.ingredients import Data, Readout, RunOpts, TokenFilter
from modeldiff_cli.core.spine.spec import command_params, option

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Echo(Command):
    """A test command: one model, data, and a file written per run (counts executions)."""

    name = "echo"
    modes = (MODEL,)
    defaults = {"max_tokens": (64, "echo reads short texts")}
    old_flags = {"word": ("--old-word",)}
    organism_fill = {"model": "ft", "data": ("base",)}
    executed = []  # noqa: RUF012 - test bookkeeping

    model: Compared = field(default_factory=Compared)
    data: Data = field(default_factory=Data)
    tokens: TokenFilter = field(default_factory=TokenFilter)
    word: str = option("hello", "--word", "A word written into the run.")

    def fingerprints(self) -> Fingerprints:
        return Fingerprints(self.model.labels, self.data.names, {**self.model.fingerprint(), **self.data.fingerprint()})

    def execute(self, run) -> Result:
        from modeldiff_cli.core.spine import artifacts

        Echo.executed.append(self)
        artifacts.write_json(run.file("word.json"), {"word": self.word})
        run.describe("word.json", "the word", "payload")
        return Result(headline={"word": self.word}, lines=[f"word: {self.word}"])


def test_params_flattened_in_panels_with_overrides_and_old_spellings():
    params = {p.name: p for p in command_params(Echo)}
    assert [p.panel for p in command_params(Echo)][:4] == ["Models"] * 4
    assert params["text_field"].panel == "Data" and params["out"].panel == "Run" and params["word"].panel == "Echo"
    assert params["max_tokens"].default == 64 and "echo reads short texts" in params["max_tokens"].opt.help
    assert params["word"].opt.old == ("--old-word",)
    assert params["drop_punctuation"].opt.old == ("--filter-punctuation",)
    # each option is declared once: the shared ingredients declare disjoint names
    for a, b in [(Compared, Data), (Data, Readout), (Readout, RunOpts), (TokenFilter, Data), (Compared, Readout)]:
        common = {f.name for f in dataclasses.fields(a)} & {f.name for f in dataclasses.fields(b)}
        assert not common, common
    # a one-model command has the options of its mode only
    assert "model" in params and not {"base", "ft", "base_device", "ft_device", "pairs", "data_a"} & set(params)


def test_make_applies_organism_policy_and_validation(tmp_path):
    data = tmp_path / "d.txt"
    data.write_text("one two\n")
    cmd = Echo.make(data=[str(data)], model="organism:cake:base")
    assert cmd.data.data == (str(data),) and cmd.data.max_tokens == 64
    with pytest.raises(UserError, match="--data: required when --model is given"):
        Echo.make(model="organism:cake:base")
    filled = Echo.make()
    assert filled.model.model == "organism:cake:ft" and filled.data.data[0].endswith("base.jsonl")
    # bounds and choices: the spine checks them for Python construction as for the CLI
    with pytest.raises(UserError, match="^--max-tokens 1: must be at least 2$"):
        Echo.make(max_tokens=1)
    with pytest.raises(UserError, match="^--dtype 'float8': expected one of float32, bfloat16, float16, auto$"):
        Echo.make(dtype="float8")
    with pytest.raises(UserError, match="echo: no option readout"):
        Echo.make(readout="tuned")


def _run(tmp_path, *args):
    import typer
    from typer.testing import CliRunner

    from modeldiff_cli.cli import ModeldiffGroup

    app = typer.Typer(cls=ModeldiffGroup, add_completion=False)
    spine.register(app, Echo)

    @app.command("other")
    def _other() -> None:  # a second command so `echo` is a sub-command
        pass

    result = CliRunner().invoke(app, ["echo", "--out", str(tmp_path / "runs"), *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def test_layout_summary_reuse_and_old_spelling(tmp_path, tiny_model_dir):
    model = tiny_model_dir("llama", 0)
    data = tmp_path / "a.jsonl"
    data.write_text('{"text": "the cat"}\n')
    Echo.executed.clear()
    code, out, err = _run(tmp_path, "--model", model, "--data", data, "--old-word", "bonjour")
    assert code == 0, err
    assert "--old-word is deprecated; use --word" in err
    run = Path(out.strip().splitlines()[-1])
    assert run.relative_to(tmp_path / "runs").parts[:2] == ("echo", f"{model.parent.name}--{model.name}")
    assert run.name.startswith("a-") and len(run.name) == len("a-") + 8
    summary = json.loads((run / "summary.json").read_text())
    assert summary["command"] == "echo" and summary["headline"] == {"word": "bonjour"}
    assert summary["config"]["settings"]["word"] == "bonjour" and "out" not in summary["config"]["settings"]
    assert [a["path"] for a in summary["artifacts"]] == ["word.json"]
    assert all(a["description"] and a["kind"] for a in summary["artifacts"])
    assert "word: bonjour" in out
    # same configuration: reused, same headline, nothing executed
    code, out2, err2 = _run(tmp_path, "--model", model, "--data", data, "--word", "bonjour")
    assert code == 0 and out2 == out and "reusing" in err2 and len(Echo.executed) == 1
    # another data file of the same size keeps its own run
    other = tmp_path / "b.jsonl"
    other.write_text('{"text": "the dog"}\n')
    code, out3, _ = _run(tmp_path, "--model", model, "--data", other, "--word", "bonjour")
    assert code == 0 and Path(out3.strip().splitlines()[-1]) != run and run.is_dir()


def test_labels_tell_apart_models_with_the_same_leaf_name(tmp_path, tiny_model_dir):
    import shutil

    src = tiny_model_dir("llama", 0)
    a, b = tmp_path / "a" / "base", tmp_path / "b" / "base"
    shutil.copytree(src, a)
    shutil.copytree(src, b)
    la, lb = Compared(model=str(a)).labels[0], Compared(model=str(b)).labels[0]
    assert la == "a--base" and lb == "b--base"


def test_changed_inner_tensor_is_not_reused(tmp_path, tiny_model_dir, monkeypatch):
    """A checkpoint re-saved in place with one changed tensor gets a new fingerprint, so the run is redone."""
    import shutil

    from safetensors.torch import load_file, save_file

    monkeypatch.setenv("MODELDIFF_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "m" / "model"
    shutil.copytree(tiny_model_dir("llama", 0), model)
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "the cat"}\n')
    Echo.executed.clear()
    assert _run(tmp_path, "--model", model, "--data", data)[0] == 0
    weights = model / "model.safetensors"
    tensors = load_file(weights)
    name = sorted(k for k in tensors if "layers.1" in k)[0]
    tensors[name] = tensors[name] + 1.0
    stat = weights.stat()
    save_file(tensors, weights, metadata={"format": "pt"})
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old mtime back
    code, out, err = _run(tmp_path, "--model", model, "--data", data)
    assert code == 0, err
    assert len(Echo.executed) == 2 and "reusing" not in err


def test_conflicting_run_refused_and_partial_removed(tmp_path, tiny_model_dir, monkeypatch):
    model = tiny_model_dir("llama", 0)
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "the cat"}\n')

    def boom(self, run):
        (run.work / "half.txt").write_text("x")
        raise UserError("--word: boom")

    monkeypatch.setattr(Echo, "execute", boom)
    code, out, err = _run(tmp_path, "--model", model, "--data", data)
    assert code == 2 and err.strip() == "error: --word: boom"
    root = tmp_path / "runs" / "echo"
    leftovers = [p for p in root.rglob("*") if p.is_file()]
    assert leftovers == [], leftovers


def test_reuse_loads_no_model(tmp_path, tiny_model_dir):
    """A reused `lens` run never imports torch, transformers or safetensors, so no model can have loaded; the
    first run, through the same probe, does import them (the probe can see a load)."""
    base, ft = tiny_model_dir("llama", 0), tiny_model_dir("llama", 1)
    data = tmp_path / "d.txt"
    data.write_text("the cat sat on the mat\nhello world\n")
    env = {**os.environ, "MODELDIFF_CACHE_DIR": str(tmp_path / "cache")}
    probe = ("import sys, atexit, modeldiff_cli.cli as c; sys.argv[0] = 'modeldiff'; "
             "atexit.register(lambda: print('TORCH' if 'torch' in sys.modules else 'NOTORCH', "
             "'LOADER' if {'transformers', 'safetensors'} & set(sys.modules) else 'NOLOADER', file=sys.stderr)); "
             "c.main()")
    args = [sys.executable, "-c", probe,
            "lens", "--base", str(base), "--ft", str(ft), "--data", str(data), "--out", str(tmp_path / "runs"),
            "--device", "cpu"]
    first = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "TORCH LOADER" in first.stderr, first.stderr  # the probe sees a real load
    second = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout and "reusing" in second.stderr
    assert "NOTORCH NOLOADER" in second.stderr, second.stderr


def test_core_imports_nothing_above_it():
    import ast

    for path in (ROOT / "modeldiff_cli" / "core").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                names = {a.name for a in node.names}
                upward = module.startswith(("..commands", "..organisms", "modeldiff_cli.commands", "modeldiff_cli.organisms"))
                assert not upward and not (module == ".." and names & {"commands", "organisms"}), (path.name, module)
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith(("modeldiff_cli.commands", "modeldiff_cli.organisms")) for a in node.names)


@pytest.mark.parametrize(
    "args",
    [
        ["mine", "--base", "{b}", "--ft", "{f}"],
        ["lens", "--base", "{b}", "--ft", "{f}"],
        ["nll", "--base", "{b}", "--ft", "{f}"],
        ["attribute", "--base", "{b}", "--ft", "{f}"],
        ["attribute", "--old", "{b}", "--new", "{f}"],
        ["tokenlens", "attribute", "--model", "{f}"],
        ["routing", "--base", "{b}", "--ft", "{f}"],
    ],
)
def test_models_without_data_exit_2_with_one_line(args, tiny_model_dir, cli, tmp_path):
    b, f = tiny_model_dir("llama", 0), tiny_model_dir("llama", 1)
    code, out, err = cli(*[a.format(b=b, f=f) for a in args], "--out", tmp_path / "runs")
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --") and "required when" in lines[0], err


def _lens_on(cli, tmp_path, b, f, data):
    return cli("lens", "--base", b, "--ft", f, "--data", data, "--out", tmp_path / "runs", "--device", "cpu")


def test_data_sources_through_a_command(tiny_model_dir, cli, tmp_path, monkeypatch):
    """Parquet, CSV and a saved dataset give the same lens numbers as the JSONL file; an offline hub id: exit 2."""
    import datasets
    import numpy as np
    import pandas as pd

    monkeypatch.setenv("MODELDIFF_CACHE_DIR", str(tmp_path / "cache"))
    b, f = tiny_model_dir("llama", 0), tiny_model_dir("llama", 1)
    texts = ["the cat sat on the mat", "hello world, this is a tiny corpus", "numbers 0 1 2 3 and the dog"]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    pd.DataFrame({"text": texts, "n": [1, 2, 3]}).to_parquet(tmp_path / "d.parquet")
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "d.csv", index=False)
    datasets.Dataset.from_dict({"text": texts}).save_to_disk(str(tmp_path / "saved"))
    curves = {}
    for src in (jsonl, tmp_path / "d.parquet", tmp_path / "d.csv", tmp_path / "saved"):
        code, out, err = _lens_on(cli, tmp_path, b, f, src)
        assert code == 0, err
        run = Path(out.strip().splitlines()[-1])
        curves[src.name] = np.load(run / "lens_matrices.npz")["kl_ft_base"]
    for name, curve in curves.items():
        np.testing.assert_allclose(curve, curves["d.jsonl"], rtol=1e-6, err_msg=name)
    code, out, err = _lens_on(cli, tmp_path, b, f, "hf:nonexistent-org/nonexistent-dataset")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "hf:nonexistent-org/nonexistent-dataset" in err, err
