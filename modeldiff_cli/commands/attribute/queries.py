"""`modeldiff attribute queries`: build test queries per function from a hops-style file, keep (with --model)
only those the model answers correctly among the candidate constants, and count what was kept."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...core import artifacts, console
from ...core.data import file_fingerprint, read_records
from ...core.errors import UserError
from ...core.rundir import config_hash, run_directory, slug
from .ground_truth import kind_of


@dataclass
class QueryOptions:
    data: Path | None
    template: str
    model: str | None
    inputs: str
    text_field: str
    include_distractors: bool
    out: Path
    device: str
    dtype: str
    batch_size: int
    overwrite: bool


def parse_inputs(spec: str) -> list[str]:
    xs = [x.strip() for x in spec.split(",") if x.strip()]
    if not xs:
        raise UserError(f"--inputs {spec!r}: give a comma list of inputs, e.g. 1,2,3")
    return list(dict.fromkeys(xs))


def functions_of(records: list[dict], include_distractors: bool = False) -> dict[str, dict]:
    """``{func: {role, constant}}`` in order of first appearance (distractors left out unless asked)."""
    funcs: dict[str, dict] = {}
    for r in records:
        f = r.get("func")
        if f is None or f in funcs or r.get("constant") is None:
            continue
        kind = kind_of(r.get("role"))
        if kind == "distractor" and not include_distractors:
            continue
        funcs[f] = {"role": r.get("role"), "kind": kind, "constant": r.get("constant")}
    return funcs


def build_queries(functions: dict[str, dict], template: str, inputs: list[str]) -> list[dict]:
    """One query per (function, input): the template with {F} and {x} filled, the constant as target."""
    if "{F}" not in template:
        raise UserError(f"--template {template!r}: must contain {{F}} (the function name)")
    xs = inputs if "{x}" in template else inputs[:1]
    candidates = sorted({str(f["constant"]) for f in functions.values()}, key=lambda c: (len(c), c))
    sep = " " if template[-1:].isalnum() else ""  # "... the value" + " 5"; "... the value " + "5"
    candidates = [sep + c for c in candidates]
    out = []
    for func, info in functions.items():
        for x in xs:
            out.append({
                "uid": f"q_{func.strip('<>')}_{x}" if "{x}" in template else f"q_{func.strip('<>')}",
                "prompt": template.replace("{F}", func).replace("{x}", x), "completion": sep + str(info["constant"]),
                "func": func, "role": info["role"], "constant": info["constant"], "x": x, "candidates": candidates,
            })
    for q in out:
        q["text"] = q["prompt"] + q["completion"]
    return out


def answers_correct(model, queries: list[dict], batch_size: int) -> list[bool]:
    """Whether the model's highest-scoring candidate (summed log-prob of its tokens) is the expected one."""
    import torch

    from .extract import collate
    from .inputs import encode_query

    items, owners = [], []
    for qi, q in enumerate(queries):
        for c in q["candidates"]:
            items.append(encode_query(f"{qi}:{c}", q["prompt"], c, model.tokenizer))
            owners.append((qi, c))
    pad = model.tokenizer.pad_token_id or 0
    totals = []
    with torch.no_grad():
        for s in console.track(range(0, len(items), batch_size * 4), "queries: candidates", total=-(-len(items) // (batch_size * 4))):
            batch = collate(items[s : s + batch_size * 4], pad, "last").to(model.device)
            logp = torch.log_softmax(model.model(input_ids=batch.ids, attention_mask=batch.attn).logits.float(), -1)
            valid = batch.tgt != -100
            tok = logp.gather(-1, batch.tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            totals.extend((tok * valid).sum(1).tolist())
    best: dict[int, tuple[float, str]] = {}
    for (qi, c), t in zip(owners, totals):
        if qi not in best or t > best[qi][0]:
            best[qi] = (t, c)
    return [best[qi][1] == q["completion"] for qi, q in enumerate(queries)]


def run(o: QueryOptions) -> Path:
    inputs = parse_inputs(o.inputs)
    if "{F}" not in o.template:
        raise UserError(f"--template {o.template!r}: must contain {{F}} (the function name)")
    data = o.data
    if data is None:
        from ...organisms import get_organism

        data = get_organism("hops").data("train")
    records = read_records(data, o.text_field, "--data")
    rows = [r.fields for r in records]
    missing = [k for k in ("func", "constant") if not any(k in r for r in rows)]
    if missing:
        raise UserError(f"--data {data}: records have no {missing[0]!r} field (expected hops-style func / role / constant)")
    functions = functions_of(rows, o.include_distractors)
    queries = build_queries(functions, o.template, inputs)
    model = None
    if o.model is not None:
        from ...core.models import load_model

        model = load_model(o.model, dtype=o.dtype, device=o.device)
    config = {"data": file_fingerprint(Path(data)), "template": o.template, "inputs": inputs,
              "model": model.source.fingerprint if model else None, "include_distractors": o.include_distractors}
    parts = ["attribute-queries", slug(f"{Path(data).stem}-{config_hash(config)}")]
    with run_directory(o.out, parts, config, command="attribute queries", overwrite=o.overwrite) as run_dir:
        if run_dir.reused:
            console.info(f"reusing the complete run in {run_dir.path} (pass --overwrite to recompute)")
        else:
            correct = answers_correct(model, queries, o.batch_size) if model else [True] * len(queries)
            for q, ok in zip(queries, correct):
                q["correct"] = ok if model else None
            kept = [q for q, ok in zip(queries, correct) if ok]
            counts = [{"func": f, "role": info["role"], "built": sum(q["func"] == f for q in queries),
                       "kept": sum(q["func"] == f for q in kept)} for f, info in functions.items()]
            artifacts.write_jsonl(run_dir.file("queries.jsonl"), kept)
            artifacts.write_jsonl(run_dir.file("all_queries.jsonl"), queries)
            artifacts.write_csv(run_dir.file("kept_counts.csv"), counts, ["func", "role", "built", "kept"])
            artifacts.write_json(run_dir.file("kept_counts.json"), {"functions": counts, "built": len(queries),
                                                                   "kept": len(kept), "filtered_by": o.model})
            run_dir.metadata.update(data=str(data), model=o.model)
            console.result("| func | role | built | kept |\n|---|---|---|---|")
            for c in counts:
                console.result(f"| {c['func']} | {c['role']} | {c['built']} | {c['kept']} |")
            how = f"answered correctly by {o.model}" if model else "no --model: all kept"
            console.result(f"queries: kept {len(kept)} of {len(queries)} ({how}); file: {run_dir.path / 'queries.jsonl'}")
    console.done(run_dir.path)
    return run_dir.path
