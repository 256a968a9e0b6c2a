"""Device options shared by the pair commands: per-model devices and clear errors without CUDA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch


@pytest.fixture()
def data_file(tmp_path) -> Path:
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": f"the cat sat on the mat {i}"}) + "\n" for i in range(4)))
    return path


def test_mine_with_per_model_devices_equals_default(cli, tiny_model_dir, data_file, tmp_path):
    a, b = tiny_model_dir("llama", 0), tiny_model_dir("llama", 1)
    common = ["mine", "--base", a, "--ft", b, "--data", data_file, "--top-k", "5", "--orderings", "top-k-occurring", "--no-plots"]
    code, out, err = cli(*common, "--out", tmp_path / "one", "--device", "cpu")
    assert code == 0, err
    code2, out2, err2 = cli(*common, "--out", tmp_path / "two", "--base-device", "cpu", "--ft-device", "cpu")
    assert code2 == 0, err2
    s1 = json.loads((Path(out.strip().splitlines()[-1]) / "d_global_token_stats.json").read_text())
    s2 = json.loads((Path(out2.strip().splitlines()[-1]) / "d_global_token_stats.json").read_text())
    assert s1 == s2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
@pytest.mark.parametrize("command", ["mine", "lens", "nll"])
def test_cuda_device_without_cuda_is_exit_2(cli, tiny_model_dir, data_file, tmp_path, command):
    a = tiny_model_dir("llama", 0)
    code, _, err = cli(command, "--base", a, "--ft", a, "--data", data_file, "--ft-device", "cuda:1", "--out", tmp_path)
    assert code == 2
    assert err.strip() == "error: --ft-device cuda:1: no CUDA device is available on this machine (use --device cpu)"
