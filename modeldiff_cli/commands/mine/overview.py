"""`modeldiff mine overview`: the budgeted, anonymised JSON payload of a mine run for an LLM agent."""

from __future__ import annotations

import json
from pathlib import Path

from ...core import console
from ...core.artifacts import read_json, write_json
from ...core.errors import UserError


def split_budget(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal integers (earlier parts get the remainder)."""
    if parts <= 0:
        return []
    q, r = divmod(total, parts)
    return [q + (1 if i < r else 0) for i in range(parts)]


def build_overview(run_dir: Path, token_budget: int) -> dict:
    meta = read_json(run_dir / "run_metadata.json", "RUN_DIR")
    if meta.get("command") != "mine":
        raise UserError(f"RUN_DIR {run_dir}: not a `modeldiff mine` run (command: {meta.get('command')})")
    index = read_json(run_dir / "orderings_index.json")
    names = {name: f"ds{i}" for i, name in enumerate(index, 1)}
    payload = {"metadata": {}, "token_budget": token_budget, "datasets": {}}
    for name, budget in zip(index, split_budget(token_budget, len(index))):
        groups: dict[str, list[dict]] = {}
        for e in index[name]:
            groups.setdefault("nmf" if e["ordering_id"].startswith("nmf_") else e["ordering_id"], []).append(e)
        group_out = []
        for (group, entries), g_budget in zip(groups.items(), split_budget(budget, len(groups))):
            orderings = []
            for e, o_budget in zip(entries, split_budget(g_budget, len(entries))):
                doc = read_json(run_dir / e["file"])
                ordering = doc["orderings"][0] if "orderings" in doc else doc
                orderings.append({"ordering_id": e["ordering_id"], "label": e["display_label"],
                                  "tokens": [t["token_str"] for t in ordering["tokens"][:o_budget]]})
            group_out.append({"group": group, "budget": g_budget, "orderings": orderings})
        payload["datasets"][names[name]] = {"budget": budget, "ordering_groups": group_out}
    cfg = meta.get("config", {})
    payload["metadata"] = {
        "extraction": meta.get("extraction"), "layer": meta.get("layer"), "top_k": cfg.get("top_k"),
        "orderings": meta.get("orderings"), "token_filters": meta.get("token_filters"),
        "shared_vocab": meta.get("shared_vocab"), "base_model": cfg.get("base"), "ft_model": cfg.get("ft"),
        "datasets": [{"name": names[d["name"]], "samples": d["samples"], "positions": d["positions"]}
                     for d in meta.get("datasets", []) if d["name"] in names],
    }
    return payload


def run_overview(run_dir: Path, token_budget: int) -> Path:
    run_dir = Path(run_dir)
    if token_budget < 1:
        raise UserError(f"--token-budget {token_budget}: must be at least 1")
    if not (run_dir / "run_metadata.json").is_file():
        raise UserError(f"RUN_DIR {run_dir}: not a complete run directory (no run_metadata.json)")
    payload = build_overview(run_dir, token_budget)
    path = write_json(run_dir / f"overview_budget{token_budget}.json", payload)
    console.out.print_json(json.dumps(payload))
    console.done(path)
    return path
