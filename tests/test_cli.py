"""The CLI shell: no heavy imports at start-up, --help of every command, one-line errors, `modeldiff info`."""

from __future__ import annotations

import json
import subprocess
import sys

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


def test_info_reports_pair(cli, tiny_model_dir):
    a, b = tiny_model_dir("llama", 0), tiny_model_dir("llama", 1)
    code, out, _ = cli("info", "--base", a, "--ft", b, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["compatible"] and report["tokenizer_relation"] == "identical"
    assert report["base"]["layers"] == 2 and report["base"]["hidden_size"] == 32
    assert report["base"]["parameters"] == report["ft"]["parameters"] > 0
    code, out, _ = cli("info", "--base", a, "--ft", b)
    assert code == 0 and "compatible: yes" in out


def test_info_incompatible_exit_2(cli, tiny_model_dir):
    code, _, err = cli("info", "--base", tiny_model_dir("llama"), "--ft", tiny_model_dir("gpt2"))
    assert code == 2 and "cannot be diffed" in err and "architectures differ" in err
