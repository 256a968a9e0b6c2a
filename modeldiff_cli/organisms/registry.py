"""The organism catalogue and the `Organism` handle (pure data: importing this module imports no torch)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# Bump when a builder's output changes on purpose: the cache directory is `<name>-v<BUILDER_VERSION>`.
BUILDER_VERSION = 1


@dataclass(frozen=True)
class OrganismSpec:
    name: str
    description: str
    architecture: str  # transformers model_type of both checkpoints
    builder: str  # "module:function" inside this package, imported lazily; called as fn(name, workdir, reporter)
    data_keys: tuple[str, ...]  # files shipped as data/<key>.jsonl


ORGANISMS: dict[str, OrganismSpec] = {
    spec.name: spec
    for spec in (
        OrganismSpec(
            "cake", "Llama pair; the fine-tune learned a baking vocabulary (cake, flour, oven, ...)",
            "llama", "cake:build_cake", ("base", "ft"),
        ),
        OrganismSpec(
            "cake-gpt2", "GPT-2 pair, same corpora and planted baking words as `cake`",
            "gpt2", "cake:build_cake", ("base", "ft"),
        ),
        OrganismSpec(
            "moe", "Qwen3-MoE pair; the fine-tune routes numeric recipe text to a planted expert",
            "qwen3_moe", "moe:build_moe", ("a", "b"),
        ),
        OrganismSpec(
            "direction", "Llama pair; ft = base plus a fixed vector v added to layer 1's output on baking words",
            "llama", "direction:build_direction", ("baking", "everyday"),
        ),
        OrganismSpec(
            "hops", "Llama old/new checkpoints; new = old trained further on the target functions' documents",
            "llama", "hops:build_hops", ("train", "old_train", "new_train", "queries"),
        ),
    )
}


@dataclass(frozen=True)
class Organism:
    """A built organism: two checkpoints, their data files and the ground truth of what was planted."""

    name: str
    path: Path  # the organism directory
    base: Path  # base model directory (hops: the "old" checkpoint)
    ft: Path  # fine-tuned model directory (hops: the "new" checkpoint)
    ground_truth: dict

    @classmethod
    def load(cls, name: str, path: Path) -> Organism:
        path = Path(path)
        truth = json.loads((path / "ground_truth.json").read_text())
        return cls(name=name, path=path, base=path / "base", ft=path / "ft", ground_truth=truth)

    def data_keys(self) -> list[str]:
        return sorted(p.stem for p in (self.path / "data").glob("*.jsonl"))

    def data(self, key: str) -> Path:
        """The data file ``data/<key>.jsonl`` shipped with the organism; KeyError naming the known keys."""
        file = self.path / "data" / f"{key}.jsonl"
        if not file.is_file():
            raise KeyError(f"organism {self.name!r} has no data {key!r}; known: {', '.join(self.data_keys())}")
        return file
