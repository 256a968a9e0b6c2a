"""The CLI shell: no heavy imports at start-up, --help of every command, one-line errors, `modeldiff info`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modeldiff_cli import __version__
from modeldiff_cli.cli import COMMAND_MODULES

COMMANDS = ["info", "organism", "mine", "lens", "nll", "tokenlens", "attribute"]


def test_startup_imports_nothing_heavy():
    code = (
        "import sys; from modeldiff_cli.cli import app; "
        "heavy = [m for m in ('torch', 'transformers', 'numpy', 'matplotlib', 'inseq', 'pandas') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"imported at start-up: {out}"


def test_version_and_root_help(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"modeldiff {__version__}"
    code, out, _ = cli("--help")
    assert code == 0
    for name in COMMANDS:
        assert name in out
    assert set(COMMANDS) <= set(COMMAND_MODULES)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help(cli, name):
    code, out, _ = cli(name, "--help")
    assert code == 0 and "Usage" in out and len(out) > 200


def test_unknown_option_is_one_line_exit_2(cli):
    code, _, err = cli("info", "--no-such-flag")
    assert code == 2
    assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1


def test_user_error_is_one_line_exit_2(cli):
    code, out, err = cli("info", "--base", "./missing-model", "--ft", "./missing-model")
    assert code == 2 and "Traceback" not in err
    assert err.strip() == "error: --base ./missing-model: no such model directory"


def test_info_reports_pair(cli, tiny_model_dir, tmp_path):
    a, b = tiny_model_dir("llama", 0), tiny_model_dir("llama", 1)
    code, out, err = cli("info", "--base", a, "--ft", b, "--json", "--out", tmp_path)
    assert code == 0
    report = json.loads(out)  # --json: stdout is the JSON document alone; the run directory goes to stderr
    assert report["compatible"] and report["tokenizer_relation"] == "identical"
    assert report["base"]["layers"] == 2 and report["base"]["hidden_size"] == 32
    assert report["base"]["parameters"] == report["ft"]["parameters"] > 0
    assert "run directory: " in err
    code, out, _ = cli("info", "--base", a, "--ft", b, "--out", tmp_path)
    assert code == 0 and "compatible: yes" in out and "tokenizers: identical" in out
    assert "hidden_size" in out and "parameters" in out  # the side-by-side table


def test_info_writes_a_reused_run_directory(cli, tiny_model_dir, tmp_path, monkeypatch):
    a, b = tiny_model_dir("llama", 0), tiny_model_dir("llama", 1)
    code, out, _ = cli("info", "--base", a, "--ft", b, "--out", tmp_path)
    assert code == 0
    lines = out.strip().splitlines()
    run = Path(lines[-1])
    from modeldiff_cli.commands.info import Info
    from modeldiff_cli.core.spine.rundir import slug

    labels = Info.make(base=str(a), ft=str(b)).compared.labels
    assert run.parent.parent.name == "info" and run.parent.name == "_vs_".join(slug(x) for x in labels)
    assert run.name.startswith("info-") and run.parent.parent.parent == tmp_path
    summary = json.loads((run / "summary.json").read_text())
    assert summary["command"] == "info" and summary["headline"]["layers"] == 2
    assert summary["headline"]["tokenizer_relation"] == "identical" and summary["headline"]["compatible"] is True
    assert summary["headline"]["parameters"]["base"] == summary["headline"]["parameters"]["ft"] > 0
    assert [x["path"] for x in summary["artifacts"]] == ["info.json"] and all(x["description"] for x in summary["artifacts"])
    facts = json.loads((run / "info.json").read_text())
    assert facts["base"]["hidden_size"] == 32 and facts["shared_vocab"] > 0 and facts["tokenizer_class"]["base"]
    # the same pair again: the run is reused (no model loads) and prints the same lines, the table included
    import modeldiff_cli.core.model.loading as models

    monkeypatch.setattr(models, "load_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded a model")))
    code, again, err = cli("info", "--base", a, "--ft", b, "--out", tmp_path)
    assert code == 0 and again.strip().splitlines() == lines and "reusing" in err
    code, again, _ = cli("info", "--base", a, "--ft", b, "--out", tmp_path, "--json")
    assert code == 0 and json.loads(again) == facts


def test_info_incompatible_exit_2(cli, tiny_model_dir, tmp_path):
    code, out, err = cli("info", "--base", tiny_model_dir("llama"), "--ft", tiny_model_dir("gpt2"), "--out", tmp_path)
    assert code == 2 and "cannot be diffed" in err and "architectures differ" in err
    assert "model_type" in out and "compatible: yes" not in out  # the table still shows what differs
    assert not any(tmp_path.rglob("summary.json")) and not any(tmp_path.rglob("*.partial-*"))  # no run written
    code, out, _ = cli("info", "--base", tiny_model_dir("llama"), "--ft", tiny_model_dir("gpt2"), "--out", tmp_path,
                       "--json")
    assert code == 2 and json.loads(out)["compatible"] is False


# ---------------------------------------------------------------- --help at 80 columns (pipes, CI logs)
def _help_commands() -> list[tuple[str, ...]]:
    import typer.main

    from modeldiff_cli.cli import app

    out = []

    def walk(cmd, path):
        out.append(path)
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            if not getattr(sub, "hidden", False):
                walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return out


def _help_params(path):
    import typer._click as click
    import typer.main

    from modeldiff_cli.cli import app

    cmd = typer.main.get_command(app)
    ctx = click.Context(cmd, info_name="modeldiff")
    for name in path:
        cmd = cmd.get_command(ctx, name)
        ctx = click.Context(cmd, parent=ctx, info_name=name)
    return [p for p in cmd.get_params(ctx) if not getattr(p, "hidden", False)], ctx


def _inner(line: str) -> str | None:
    """A panel line's content (borders off), or None outside the panels."""
    return line[2:-2].rstrip() if line.startswith("│ ") and line.endswith(" │") else None


def _check_wrapped_greedily(lines: list[str], width: int):
    """Consecutive lines of one paragraph: the next line's first word would not have fitted on the line (so a
    line never ends mid-sentence where a docstring was wrapped)."""
    for a, b in zip(lines, lines[1:]):
        if a.strip() and b.strip() and len(a) - len(a.lstrip()) == len(b) - len(b.lstrip()):
            assert len(a.rstrip()) + 1 + len(b.split()[0]) > width, (a, b)


@pytest.mark.parametrize("env", [{"COLUMNS": "80"}, {}])
def test_help_is_readable_at_80_columns(env, monkeypatch):
    """Every command's --help at 80 columns (COLUMNS=80, and a pipe with no COLUMNS): no flag name or default
    cut ('…'), every flag and its default in full, no line wider than 80, help texts wrapped as paragraphs."""
    import re

    from typer.testing import CliRunner

    from modeldiff_cli.cli import app

    monkeypatch.delenv("COLUMNS", raising=False)
    checked = 0
    for path in _help_commands():
        result = CliRunner().invoke(app, [*path, "--help"], env=env)
        assert result.exit_code == 0, (path, result.output)
        text = result.stdout
        lines = text.splitlines()
        assert "…" not in text, (path, [x for x in lines if "…" in x])
        assert max(len(x) for x in lines) <= 80, path
        flat = re.sub(r"[\s│╭╮╰╯─]+", " ", text)
        params, ctx = _help_params(path)
        for p in params:
            names, help_text = p.get_help_record(ctx) or ("", "")
            for opt in (*p.opts, *p.secondary_opts):
                if opt.startswith("-"):
                    assert re.search(rf"(^|[\s,/]){re.escape(opt)}([\s,/]|$)", flat), (path, opt)
            default = re.search(r"\[default: ([^\]]*)\]", help_text or "")
            if default:  # a default longer than a line folds inside the word: compare without whitespace
                assert "[default:" + re.sub(r"\s", "", default.group(1)) + "]" in re.sub(r"\s", "", flat), (path, p.name)
            checked += 1
        # description paragraphs (outside the panels) and option help (inside, indented) wrap greedily
        body = [x for x in lines if _inner(x) is None and not x.lstrip().startswith("Usage:")]
        _check_wrapped_greedily(body, 80 - 1)
        helps = [x if x.startswith("    ") else "" for x in (_inner(y) or "" for y in lines)]  # "" between options
        _check_wrapped_greedily(helps, 80 - 4)
    assert checked > 100  # every command's options were looked at


def test_root_help_lists_each_command_in_one_sentence(cli):
    code, out, _ = cli("--help")
    assert code == 0
    assert "Which tokens did fine-tuning promote or suppress?" in out
    assert "Streaming logit-diff mining" not in out  # the rest is in `mine --help`


def test_stderr_messages_are_one_line_at_80_columns(capsys, tmp_path):
    from modeldiff_cli.core.spine import console

    long_path = tmp_path / ("a-rather-long-directory-name-" * 4) / "data.jsonl"
    console.info(f"note: 40 of 80 queries are left out (not on a target function of the ground truth): {long_path}")
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(long_path) in err


def test_readme_lists_every_command_and_pipefail():
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    listed = set(re.findall(r"^\| `modeldiff ([a-z]+)", readme, re.M))
    assert listed == set(COMMAND_MODULES), set(COMMAND_MODULES) ^ listed
    # chaining with `| tail -n 1` needs pipefail, and the README says so where it shows the idiom
    chaining = readme.split("| tail -n 1)`", 1)[1][:400]
    assert "set -o pipefail" in chaining and "mine overview" in chaining
