"""`tokenlens attribute`: load -> prompts -> continuations -> attribute (native or inseq) -> write JSON/HTML."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ...core import console
from ...core.artifacts import write_json, write_text
from ...core.errors import UserError
from ...core.rundir import config_hash, run_directory, slug
from . import engine
from .generate import encode_prompt, greedy, with_target
from .html import render
from .output import Attribution, headline, record, user_paths


@dataclass
class AttributeOptions:
    model: str | None
    compare: str | None
    prompt: str | None
    prompts: Path | None
    method: str
    engine: str
    max_new_tokens: int
    target: str | None
    score: str
    ig_steps: int
    json_out: Path | None
    html_out: Path | None
    out: Path
    device: str
    dtype: str
    batch_size: int
    max_samples: int | None
    text_field: str
    seed: int
    overwrite: bool


@dataclass
class Item:
    """One prompt of the run; ``error`` set when it failed (the others still complete)."""

    index: int
    prompt: str
    target: str | None
    line: int | None = None
    seq: engine.Sequence | None = None
    error: str | None = None


def resolve_engine(method: str, choice: str) -> str:
    from .inseq_backend import list_methods

    valid = list_methods()
    if method not in valid:
        raise UserError(f"--method {method!r}: unknown attribution method; valid: {', '.join(valid)}")
    if choice not in ("auto", "native", "inseq"):
        raise UserError(f"--engine {choice!r}: expected auto, native or inseq")
    if choice == "native" and method not in engine.NATIVE_METHODS:
        raise UserError(f"--engine native does not implement {method}; native methods: {', '.join(engine.NATIVE_METHODS)} (use --engine inseq)")
    if choice == "auto":
        return "native" if method in engine.NATIVE_METHODS else "inseq"
    return choice


def read_items(o: AttributeOptions) -> list[Item]:
    if (o.prompt is None) == (o.prompts is None):
        raise UserError("give exactly one of --prompt and --prompts")
    if o.prompt is not None:
        if not o.prompt.strip():
            raise UserError("--prompt: the prompt is empty")
        if o.target is not None and not o.target.strip():
            raise UserError("--target: the target is empty")
        return [Item(0, o.prompt, o.target)]
    from ...core.data import read_records

    recs = read_records(o.prompts, o.text_field, "--prompts", o.max_samples)
    return [Item(i, r.text or "", r.fields.get("target", o.target), r.line) for i, r in enumerate(recs)]


def run(o: AttributeOptions) -> Path:
    from ...core.models import load_model, load_pair

    if o.score not in engine.SCORES:
        raise UserError(f"--score {o.score!r}: expected one of {', '.join(engine.SCORES)}")
    if o.max_new_tokens < 1:
        raise UserError(f"--max-new-tokens {o.max_new_tokens}: must be at least 1")
    if o.ig_steps < 1:
        raise UserError(f"--ig-steps {o.ig_steps}: must be at least 1")
    eng = resolve_engine(o.method, o.engine)
    items = read_items(o)
    json_paths = user_paths(o.json_out, len(items), "--json-out")
    html_paths = user_paths(o.html_out, len(items), "--html-out")
    torch.manual_seed(o.seed)
    if o.compare is not None:
        pair = load_pair(o.compare, o.model, dtype=o.dtype, device=o.device)
        main, other = pair.ft, pair.base
    else:
        main, other = load_model(o.model, dtype=o.dtype, device=o.device, flag="--model"), None
    tok = main.tokenizer
    prepare(items, main, o)
    config = _config(o, eng, main, other, items)
    label = main.source.label if other is None else f"{other.source.label}_vs_{main.source.label}"
    parts = ["tokenlens", label, slug(f"{o.method}-{config_hash(config)}")]
    with run_directory(o.out, parts, config, command="tokenlens attribute", overwrite=o.overwrite) as run_dir:
        if run_dir.reused:
            console.info(f"reusing the complete run in {run_dir.path} (pass --overwrite to recompute)")
            done_ = _read(run_dir.path / "summary.json")["prompts"]
            recs = [_read(run_dir.path / f"prompt_{p['index']:03d}.json") for p in done_ if p["status"] == "ok"]
            for p in done_:
                if p["status"] != "ok":
                    items[p["index"]].error = p["error"]
        else:
            results = attribute_all(items, main, eng, o)
            compared = attribute_all(items, other, eng, o) if other is not None else None
            recs = write_all(run_dir, items, results, compared, main, other, eng, o, json_paths, html_paths, tok)
    for it in items:
        if it.error:
            console.info(f"prompt #{it.index}{f' (line {it.line})' if it.line else ''} failed: {it.error}")
    for rec in recs[:10]:
        _say(f"{rec['metadata']['prompt'][:50]!r}: {headline(rec)}")
    ok = sum(it.error is None for it in items)
    _say(f"attributed {ok}/{len(items)} prompts with {o.method} ({eng} engine)")
    console.done(run_dir.path)
    return run_dir.path


def prepare(items: list[Item], lm, o: AttributeOptions) -> None:
    """Continuation of each prompt: the target (teacher forcing) or a greedy generation by --model."""
    tok = lm.tokenizer
    to_generate = []
    for it in items:
        try:
            if it.target is not None:
                it.seq = with_target(tok, it.prompt, it.target)
            else:
                to_generate.append((it, encode_prompt(tok, it.prompt, "--prompt" if o.prompts is None else "--prompts")))
        except UserError as err:
            if o.prompts is None:
                raise
            it.error = str(err)
    if to_generate:
        seqs = greedy(lm.model, tok, [ids for _, ids in to_generate], o.max_new_tokens, o.batch_size)
        for (it, _), seq in zip(to_generate, seqs):
            it.seq = seq


def attribute_all(items: list[Item], lm, eng: str, o: AttributeOptions) -> dict[int, Attribution]:
    """Attribute every prepared item with one model; a failing batch is retried prompt by prompt."""
    todo = [it for it in items if it.error is None]
    out: dict[int, Attribution] = {}
    if eng == "native":
        def one_batch(group: list[Item]) -> None:
            t0 = time.perf_counter()
            mats = engine.attribute(lm.model, lm.tokenizer, [it.seq for it in group], o.method, score=o.score,
                                    n_steps=o.ig_steps, batch_size=o.batch_size)
            dt = (time.perf_counter() - t0) / len(group)
            for it, m in zip(group, mats):
                out[it.index] = Attribution(it.seq.ids, it.seq.prompt_len, m, seconds=dt)
        for lo in console.track(range(0, len(todo), o.batch_size), f"{o.method} ({lm.source.label})"):
            group = todo[lo:lo + o.batch_size]
            try:
                one_batch(group)
            except (RuntimeError, ValueError, IndexError) as err:
                if len(group) == 1:
                    group[0].error = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
                    continue
                for it in group:
                    try:
                        one_batch([it])
                    except (RuntimeError, ValueError, IndexError) as err1:
                        it.error = f"{type(err1).__name__}: {str(err1).splitlines()[0][:200]}"
        return out
    from .inseq_backend import InseqAttributor, to_native_json

    with InseqAttributor(lm.model, lm.tokenizer, o.method) as attributor:
        for it in console.track(todo, f"{o.method} via inseq ({lm.source.label})"):
            cont = lm.tokenizer.decode(it.seq.ids[it.seq.prompt_len:], skip_special_tokens=False)
            full = it.prompt + (it.target if it.target is not None else cont)
            t0 = time.perf_counter()
            try:
                mat, ids, raw = attributor.attribute(it.prompt, full, score=o.score, n_steps=o.ig_steps)
            except Exception as err:  # noqa: BLE001 - one prompt's failure is reported, the rest complete
                it.error = f"inseq: {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
                continue
            prompt_len = len(ids) - mat.shape[1]
            out[it.index] = Attribution(ids, prompt_len, mat, inseq_json=to_native_json(raw),
                                        seconds=time.perf_counter() - t0)
    return out


def write_all(run_dir, items, results, compared, main, other, eng, o, json_paths, html_paths, tok) -> list[dict]:
    generation = {"max_new_tokens": o.max_new_tokens, "do_sample": False, "strategy": "greedy"}
    extra = {"engine": eng, "score": o.score, "dtype": o.dtype}
    if o.method == "integrated_gradients":
        extra["n_steps"] = o.ig_steps
    recs, summary = [], []
    for it in items:
        res = results.get(it.index)
        other_res = compared.get(it.index) if compared is not None else None
        if it.error is None and res is None:
            it.error = "attribution failed"
        if it.error is None and compared is not None:
            if other_res is None:
                it.error = "attribution with --compare model failed"
            elif other_res.ids != res.ids:
                it.error = "the two models' inseq tokenizations of the continuation differ"
        if it.error is not None:
            summary.append({"index": it.index, "line": it.line, "prompt": it.prompt, "status": "failed", "error": it.error})
            continue
        gen = dict(generation, target=it.target) if it.target is not None else generation
        cmp = (other.source.spec, other_res) if other is not None else None
        rec = record(res, tok, llm_id=main.source.spec, prompt=it.prompt, method=o.method, generation=gen,
                     extra_meta={**extra, "prompt_index": it.index}, compare=cmp)
        stem = f"prompt_{it.index:03d}"
        write_json(run_dir.file(f"{stem}.json"), rec)
        page = render(rec)
        write_text(run_dir.file(f"{stem}.html"), page)
        if res.inseq_json is not None:
            write_text(run_dir.file(f"{stem}.inseq.json"), res.inseq_json)
        if other_res is not None and other_res.inseq_json is not None:
            write_text(run_dir.file(f"{stem}.compare.inseq.json"), other_res.inseq_json)
        if json_paths[it.index] is not None:
            write_json(json_paths[it.index], rec)
        if html_paths[it.index] is not None:
            write_text(html_paths[it.index], page)
        recs.append(rec)
        summary.append({"index": it.index, "line": it.line, "prompt": it.prompt, "status": "ok",
                        "input_tokens": len(res.ids), "output_tokens": res.matrix.shape[1],
                        "seconds": round(res.seconds, 4)})
    if not recs:
        first = next((s for s in summary if s["status"] == "failed"), {})
        raise UserError(f"every prompt failed (first: prompt #{first.get('index')}: {first.get('error')})")
    write_json(run_dir.file("summary.json"), {"method": o.method, "engine": eng, "prompts": summary,
                                               "succeeded": len(recs), "failed": len(summary) - len(recs)})
    run_dir.metadata.update(models={"model": main.source.spec, **({"compare": other.source.spec} if other else {})})
    return recs


def _config(o: AttributeOptions, eng: str, main, other, items: list[Item]) -> dict:
    h = hashlib.sha256(json.dumps([(it.prompt, it.target) for it in items]).encode()).hexdigest()[:16]
    return {
        "model": main.source.fingerprint, "compare": other.source.fingerprint if other is not None else None,
        "prompts": h, "method": o.method, "engine": eng, "max_new_tokens": o.max_new_tokens, "score": o.score,
        "ig_steps": o.ig_steps if o.method in ("integrated_gradients",) else None, "dtype": o.dtype, "seed": o.seed,
    }


def _read(path: Path) -> dict:
    from ...core.artifacts import read_json

    return read_json(path)


def _say(text: str) -> None:
    """A result line on stdout, printed verbatim (no rich markup or :emoji: codes: `organism:cake:ft`)."""
    console.out.print(text, markup=False, emoji=False, highlight=False)
