"""`modeldiff attribute queries`: build test queries per function from a hops-style file, keep (with --model)
only those the model answers correctly among the candidate constants, and count what was kept."""

from __future__ import annotations

from ...core.errors import UserError
from ...core.spine import artifacts, console
from .artifacts import ALL_QUERIES, COUNT_COLUMNS, COUNTS_CSV, COUNTS_JSON, KEPT
from .choices import parse_inputs  # noqa: F401  (re-exported)
from .ground_truth import kind_of


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

    from .extract import collate, run_model
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
            logp = torch.log_softmax(run_model(model, batch, logits="all").logits.float(), -1)
            valid = batch.tgt != -100
            tok = logp.gather(-1, batch.tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            totals.extend((tok * valid).sum(1).tolist())
    best: dict[int, tuple[float, str]] = {}
    for (qi, c), t in zip(owners, totals):
        if qi not in best or t > best[qi][0]:
            best[qi] = (t, c)
    return [best[qi][1] == q["completion"] for qi, q in enumerate(queries)]


def read_functions(data: str, text_field: str, include_distractors: bool) -> dict[str, dict]:
    """The functions of a hops-style file (records with func, role, constant); UserError naming --data."""
    from ...core.data.datasource import read_records

    rows = [r.fields for r in read_records(data, text_field, "--data")]
    missing = [k for k in ("func", "constant") if not any(k in r for r in rows)]
    if missing:
        raise UserError(f"--data {data}: records have no {missing[0]!r} field (expected hops-style func / role / constant)")
    return functions_of(rows, include_distractors)


def write_queries(run, functions: dict[str, dict], queries: list[dict], correct: list[bool] | None,
                  model_spec: str | None):
    """Mark and keep the queries, write the four files, and return the headline and the printed lines."""
    from ...core.spine.command import Result

    for q, ok in zip(queries, correct or [None] * len(queries)):
        q["correct"] = ok
    kept = [q for q in queries if q["correct"] is not False]
    counts = [{"func": f, "role": info["role"], "built": sum(q["func"] == f for q in queries),
               "kept": sum(q["func"] == f for q in kept)} for f, info in functions.items()]
    artifacts.write_jsonl(run.file(KEPT.path()), kept)
    artifacts.write_jsonl(run.file(ALL_QUERIES.path()), queries)
    artifacts.write_csv(run.file(COUNTS_CSV.path()), counts, list(COUNT_COLUMNS))
    artifacts.write_json(run.file(COUNTS_JSON.path()), {"functions": counts, "built": len(queries),
                                                     "kept": len(kept), "filtered_by": model_spec})
    how = f"answered correctly by {model_spec}" if model_spec else "no --model: all kept"
    lines = ["| func | role | built | kept |", "|---|---|---|---|"]
    lines += [f"| {c['func']} | {c['role']} | {c['built']} | {c['kept']} |" for c in counts]
    lines.append(f"queries: kept {len(kept)} of {len(queries)} ({how}); file: {run.path / KEPT.path()}")
    headline = {"built": len(queries), "kept": len(kept), "functions": len(functions), "filtered_by": model_spec,
                "kept_by_function": {c["func"]: c["kept"] for c in counts}}
    return Result(headline=headline, lines=lines)
