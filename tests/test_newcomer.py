"""Issue 24: what a newcomer meets off the cake organism. One model of a pair alone, two identical models, bad
data / dtype / device found before any model loads, an offline hub failing at once, Ctrl-C saying what was kept,
one-source commands refusing a second --data, and `organism build`'s flags and messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modeldiff_cli.core.errors import UserError


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture()
def no_model_loads(monkeypatch):
    """Any model load fails the test: the error under test must come first."""
    from modeldiff_cli.core.model import loading as models

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(models, "load_model", refuse)
    monkeypatch.setattr(models, "load_pair", refuse)


@pytest.fixture()
def text_file(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": f"the cake number {i} is in the oven"}) + "\n" for i in range(6)))
    return path


@pytest.mark.parametrize("command", ["mine", "lens", "nll", "routing", "interpret", "attribute", "info",
                                     "tokenlens attribute"])
@pytest.mark.parametrize("given, missing", [("--base", "--ft"), ("--ft", "--base")])
def test_one_model_of_a_pair_alone_is_exit_2(cli, tmp_path, text_file, no_model_loads, command, given, missing):
    """Never a silent diff against the organism's other checkpoint (mine printed `'!' 0` as promoted tokens):
    every command that takes a pair."""
    data = {"attribute": ["--train", text_file, "--queries", text_file], "info": [],
            "tokenlens attribute": ["--prompt", "a cake"]}.get(command, ["--data", text_file])
    code, out, err = cli(*command.split(), given, "organism:cake:base", *data, "--out", tmp_path / "runs")
    assert code == 2, (out, err)
    line = _one_error_line(err)
    assert line.startswith(f"error: {missing}") and f"required when {given}" in line, line
    assert not (tmp_path / "runs").exists()


def test_one_model_alone_through_python_too(text_file):
    from modeldiff_cli.commands.mine import Mine

    with pytest.raises(UserError, match="--base: required when --ft is given"):
        Mine.make(ft="organism:cake:ft", data=(str(text_file),))
    assert Mine.make().compared.base == "organism:cake:base"  # no model at all: the organism's pair, as before


def test_identical_models_warn_on_terminal_summary_and_report(cli, tmp_path):
    from modeldiff_cli.organisms import get_organism

    data = get_organism("cake").data("ft")
    code, out, err = cli("mine", "--base", "organism:cake:base", "--ft", "organism:cake:base", "--data", data,
                         "--max-samples", "8", "--orderings", "top-k-occurring", "--no-plots", "--out", tmp_path / "runs")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "are the same model" in warnings[0] and "nothing was promoted" in warnings[0], err
    run = Path(out.strip().splitlines()[-1])
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["warnings"]) == 1 and "same model" in summary["warnings"][0]
    code, out, err = cli("mine", "--base", "organism:cake:base", "--ft", "organism:cake:base", "--data", data,
                         "--max-samples", "8", "--orderings", "top-k-occurring", "--no-plots", "--out", tmp_path / "runs")
    assert code == 0 and "are the same model" in err  # a reused run still says so
    code, out, err = cli("report", tmp_path / "runs", "--out", tmp_path / "report")
    assert code == 0, err
    index = json.loads((tmp_path / "report" / "report.json").read_text())
    (entry,) = index["runs"]
    assert any("same model" in w for w in entry["warnings"])
    assert "are the same model" in (tmp_path / "report" / "index.html").read_text()  # the warnings column


def test_different_models_do_not_warn(tmp_path):
    from modeldiff_cli.commands.mine import Mine

    assert Mine.make().compared.identical_warning() is None
    same = Mine.make(base="organism:cake:ft", ft="organism:cake:ft", data=(str(tmp_path),))
    assert "organism:cake:ft" in same.compared.identical_warning()


def test_zero_differences_warn_without_equal_fingerprints():
    """Two copies with other bytes but the same logits: every accumulated top-K count is 0."""
    import torch

    from modeldiff_cli.commands.mine import Mine

    class Stats:
        total_positions = 10
        count_topk_pos = torch.zeros(5)
        count_topk_neg = torch.zeros(5)

    class Acc:
        stats = Stats()

    cmd = Mine.make()
    (warning,) = cmd.identical_warnings([Acc()])
    assert "every logit difference is zero on" in warning
    Stats.count_topk_pos = torch.tensor([0.0, 1, 0, 0, 0])
    assert cmd.identical_warnings([Acc()]) == []


@pytest.mark.parametrize("flags, needle", [
    (["--text-field", "body"], "no field 'body'"),
    (["--dtype", "float8"], "--dtype 'float8'"),
    (["--device", "tpu"], "--device 'tpu'"),
    (["--base-device", "gpu0"], "--base-device 'gpu0'"),
])
def test_bad_data_dtype_device_before_any_model_loads(cli, tmp_path, text_file, no_model_loads, flags, needle):
    code, out, err = cli("mine", "--base", "organism:cake:base", "--ft", "organism:cake:ft", "--data", text_file,
                         *flags, "--out", tmp_path / "runs")
    assert code == 2, (out, err)
    assert needle in _one_error_line(err)
    assert not list((tmp_path / "runs").rglob("summary.json"))


def test_malformed_data_after_good_lines_is_found_before_loading(cli, tmp_path, text_file, no_model_loads):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(text_file.read_text() + "{not json\n")
    code, _, err = cli("lens", "--base", "organism:cake:base", "--ft", "organism:cake:ft", "--data", bad,
                       "--out", tmp_path / "runs")
    assert code == 2 and f"{bad}:7" in _one_error_line(err)


def test_nll_prompt_completion_records_pass_the_check(tmp_path):
    """nll reads prompt/completion records by --prompt-field: the generic --text-field check must not refuse them."""
    from modeldiff_cli.commands.nll import Nll

    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"prompt": "a", "completion": " b"}) + "\n")
    Nll.make(base="organism:cake:base", ft="organism:cake:ft", data=(str(qa),)).preflight()
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"question": "a"}) + "\n")
    with pytest.raises(UserError, match="no field 'text'"):
        Nll.make(base="organism:cake:base", ft="organism:cake:ft", data=(str(other),)).preflight()


def test_offline_hub_model_fails_at_once(cli, tmp_path, text_file, no_model_loads):
    code, _, err = cli("mine", "--base", "some-org/base-model", "--ft", "some-org/ft-model", "--data", text_file,
                       "--out", tmp_path / "runs")
    assert code == 2
    line = _one_error_line(err)
    assert "--base some-org/base-model: not a local directory and not in the Hugging Face cache" in line
    assert "offline (HF_HUB_OFFLINE=1)" in line


def test_unreachable_hub_is_found_by_one_probe(monkeypatch):
    """No offline variable, but the endpoint refuses connections: the probe says so (no retries)."""
    from modeldiff_cli.core.model import sources

    for var in sources.OFFLINE_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    sources._probe_hub.cache_clear()
    try:
        why = sources.hub_unavailable()
        assert why is not None and why.startswith("127.0.0.1:9 ")
        src = sources.resolve_source("some-org/some-model", flag="--ft")
        with pytest.raises(UserError, match=r"--ft some-org/some-model: .*Hub is offline \(127\.0\.0\.1:9 "):
            sources.model_fingerprint(src)
    finally:
        sources._probe_hub.cache_clear()


def test_offline_hub_dataset_fails_before_models(cli, tmp_path, no_model_loads):
    code, _, err = cli("mine", "--base", "organism:cake:base", "--ft", "organism:cake:ft",
                       "--data", "hf:some-org/never-cached", "--out", tmp_path / "runs")
    assert code == 2
    line = _one_error_line(err)
    assert "--data hf:some-org/never-cached: not in the Hugging Face cache" in line and "offline" in line


def test_ctrl_c_without_a_checkpoint_says_nothing_was_written(cli, tmp_path, monkeypatch):
    from modeldiff_cli.commands.mine import Mine

    def interrupted(self, run):
        raise KeyboardInterrupt

    monkeypatch.setattr(Mine, "execute", interrupted)
    code, out, err = cli("mine", "--max-samples", "4", "--out", tmp_path / "runs")
    assert code == 130
    assert err.strip().splitlines()[-1] == ("interrupted: nothing was written (a run is written only when it "
                                            "completes)"), err
    assert not list((tmp_path / "runs").rglob("summary.json")) and not list((tmp_path / "runs").rglob(".*partial*"))


@pytest.mark.parametrize("command", ["lens", "nll"])
def test_one_source_commands_refuse_a_second_data(cli, tmp_path, text_file, command):
    code, _, err = cli(command, "--base", "organism:cake:base", "--ft", "organism:cake:ft", "--data", text_file,
                       "--data", text_file, "--out", tmp_path / "runs")
    assert code == 2 and "--data: this command takes one data source (got 2)" in _one_error_line(err)


def test_help_says_which_commands_repeat_data(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    helps = {c: " ".join(cli(c, "--help")[1].replace("│", " ").split()) for c in ("mine", "interpret", "lens", "nll")}
    for c in ("mine", "interpret"):
        assert "--data <source>..." in helps[c] and "repeat for several" in helps[c]
    for c in ("lens", "nll"):
        assert "--data <source>" in helps[c] and "--data <source>..." not in helps[c]
        assert "repeat for several" not in helps[c].split("--data <source>")[1].split("--")[0]


def test_organism_build_takes_overwrite_and_names_its_target(cli, tmp_path, monkeypatch):
    from modeldiff_cli import organisms

    seen = {}

    def fake_build(name, out=None, force=False, progress=True):
        seen.update(name=name, out=out, force=force)
        raise UserError("stop here")

    monkeypatch.setattr(organisms, "build_organism", fake_build)
    for flag in ("--overwrite", "--force"):  # --force: the old spelling, hidden
        code, _, err = cli("organism", "build", "cake", "--out", tmp_path / "org", flag)
        assert code == 2 and seen == {"name": "cake", "out": tmp_path / "org", "force": True}, err
    code, out, _ = cli("organism", "build", "--help")
    assert "--overwrite" in out and "--force" not in out


def test_organism_build_message_names_the_target_not_its_parent(tmp_path, capsys, monkeypatch):
    from modeldiff_cli.organisms import store

    monkeypatch.setattr(store, "ORGANISMS", {"x": type("Spec", (), {"builder": "cake:build_cake"})()})

    def builder(name, workdir, reporter):
        return {}

    monkeypatch.setattr("modeldiff_cli.organisms.cake.build_cake", builder)
    store._run_builder("x", tmp_path / ".x.partial", True, tmp_path / "x")
    err = capsys.readouterr().err
    assert f"into {tmp_path / 'x'} " in err and f"into {tmp_path} " not in err
