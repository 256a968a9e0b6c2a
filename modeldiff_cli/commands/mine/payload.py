"""The agent payload of a token-mining run: per anonymised dataset (ds1, ds2, ...) the token groups of each
ordering within a token budget, plus the run's metadata.

Reads a complete run directory written through the spine (``summary.json`` and the ``orderings_index.json``
the run lists its orderings in); writes nothing. Used by ``mine overview`` and by later commands that hand a
mine run to an LLM agent (``interpret``). Torch-free.
"""

from __future__ import annotations

from pathlib import Path

from ...core.errors import UserError
from ...core.spine.artifacts import read_json
from .artifacts import INDEX


def split_budget(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal integers (earlier parts get the remainder)."""
    if parts <= 0:
        return []
    q, r = divmod(total, parts)
    return [q + (1 if i < r else 0) for i in range(parts)]


def read_run(run_dir: Path, command: str = "mine", flag: str = "RUN_DIR") -> dict:
    """``summary.json`` of a complete run of ``command`` (UserError naming ``flag`` otherwise)."""
    run_dir = Path(run_dir)
    if not (run_dir / "summary.json").is_file() or not (run_dir / INDEX.path()).is_file():
        raise UserError(f"{flag} {run_dir}: not a complete `modeldiff {command}` run directory (no summary.json "
                        f"and {INDEX.path()})")
    summary = read_json(run_dir / "summary.json", flag)
    if summary.get("command") != command:
        raise UserError(f"{flag} {run_dir}: not a `modeldiff {command}` run (command: {summary.get('command')})")
    return summary


def _group(ordering_id: str) -> str:
    return "nmf" if ordering_id.startswith("nmf_") else ordering_id


def build_payload(run_dir: Path, token_budget: int, command: str = "mine", flag: str = "RUN_DIR") -> dict:
    """The budget split evenly across datasets, then across ordering groups (top-k-occurring,
    fraction-positive-diff, nmf), then across a group's orderings (NMF topics); each ordering contributes its
    first tokens as strings. Dataset names are replaced by ds1, ds2, ... everywhere."""
    if token_budget < 1:
        raise UserError(f"--token-budget {token_budget}: must be at least 1")
    run_dir = Path(run_dir)
    summary = read_run(run_dir, command, flag)
    index = read_json(run_dir / INDEX.path())
    names = {name: f"ds{i}" for i, name in enumerate(index, 1)}
    payload: dict = {"metadata": {}, "token_budget": token_budget, "datasets": {}}
    for name, budget in zip(index, split_budget(token_budget, len(index)), strict=True):
        groups: dict[str, list[dict]] = {}
        for e in index[name]:
            groups.setdefault(_group(e["ordering_id"]), []).append(e)
        group_out = []
        for (group, entries), g_budget in zip(groups.items(), split_budget(budget, len(groups)), strict=True):
            orderings = []
            for e, o_budget in zip(entries, split_budget(g_budget, len(entries)), strict=True):
                doc = read_json(run_dir / e["file"])
                ordering = doc["orderings"][0] if "orderings" in doc else doc
                orderings.append({"ordering_id": e["ordering_id"], "label": e["display_label"],
                                  "tokens": [t["token_str"] for t in ordering["tokens"][:o_budget]]})
            group_out.append({"group": group, "budget": g_budget, "orderings": orderings})
        payload["datasets"][names[name]] = {"budget": budget, "ordering_groups": group_out}
    meta = summary.get("metadata", {})
    config = summary.get("config", {})
    settings, prints = config.get("settings", {}), config.get("fingerprints", {})
    payload["metadata"] = {
        "readout": meta.get("readout"), "layer": meta.get("layer"), "top_k": settings.get("top_k"),
        "orderings": meta.get("orderings"), "token_filters": meta.get("token_filters"),
        "shared_vocab": meta.get("shared_vocab"),
        "base_model": prints.get("base", {}).get("spec"), "ft_model": prints.get("ft", {}).get("spec"),
        "datasets": [{"name": names[d["name"]], "samples": d["samples"], "positions": d["positions"]}
                     for d in meta.get("datasets", []) if d["name"] in names],
    }
    return payload
