"""`tokenlens attribute`'s steps: prompts -> continuations -> attribute (native or inseq) -> write records.

The command (``command.TokenlensAttribute.execute``) strings them together; ``bench`` reuses ``prepare`` and
``attribute_all`` one prompt group at a time.

Data-parallel runs (``shard=True``, ``core.spine.distributed``): the prompts are cut into the groups of ``--batch-size``
the one-process run forms; each rank generates / attributes a contiguous block of those groups (so every
generation and every attribution is the one-process run's), and the continuations and the attributions are
gathered on every rank in prompt order.

Resumable runs (``--checkpoint-every N``, ``core.spine.checkpoint``): each model's attribution loop saves the
attributions and failures of its first groups every N groups (one file per model and rank); a re-run resumes
after them. Greedy generation is deterministic and re-runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ...core.errors import UserError
from ...core.spine import checkpoint, console
from ...core.spine import distributed as dist
from ...core.spine.artifacts import write_json, write_text
from . import engine
from .artifacts import PROMPT_COMPARE_INSEQ, PROMPT_HTML, PROMPT_INSEQ, PROMPT_JSON, PROMPTS, prompt_index
from .generate import encode_prompt, greedy, with_target
from .html import render
from .output import Attribution, first_step, record, summary_line


@dataclass
class Item:
    """One prompt of the run; ``error`` set when it failed (the others still complete)."""

    index: int
    prompt: str
    target: str | None
    line: int | None = None
    seq: engine.Sequence | None = None
    error: str | None = None


def check_method(method: str, eng: str) -> None:
    """``--method`` must be one of inseq's methods (the native ones are known without importing inseq)."""
    if eng == "native" and method in engine.NATIVE_METHODS:
        return
    from .inseq_backend import list_methods

    valid = list_methods()
    if method not in valid:
        raise UserError(f"--method {method!r}: unknown attribution method; valid: {', '.join(valid)}")


def read_items(prompt: str | None, prompts: str | None, target: str | None, text_field: str,
               max_samples: int | None) -> list[Item]:
    """The single ``--prompt``, or the records of ``--prompts`` (a JSONL record may carry its own ``target``)."""
    if prompt is not None:
        return [Item(0, prompt, target)]
    from ...core.data.datasource import read_records

    recs = read_records(prompts, text_field, "--prompts", max_samples)
    return [Item(i, r.text or "", r.fields.get("target", target), r.line) for i, r in enumerate(recs)]


def groups_of(items: list, size: int) -> list[list]:
    """``items`` in consecutive groups of ``size`` (the last may be shorter)."""
    return [items[lo:lo + size] for lo in range(0, len(items), size)]


def _my_groups(items: list, size: int, shard: bool) -> list:
    """This rank's items: a contiguous block of the groups of ``size`` (every item without ``shard``)."""
    groups = groups_of(items, size)
    return [x for g in (dist.shard(groups) if shard else groups) for x in g]


def prepare(items: list[Item], lm, *, max_new_tokens: int, batch_size: int, max_tokens: int | None = None,
            isolate: bool = True, flag: str = "--prompts", shard: bool = False) -> None:
    """Continuation of each prompt: its target (teacher forcing) or a greedy generation by ``lm``.

    ``isolate``: a prompt that cannot be prepared fails alone (``item.error``); otherwise its UserError stops the run.
    ``shard``: every rank checks every prompt, generates its block of the groups, and gets every continuation.
    """
    tok = lm.tokenizer
    to_generate = []
    for it in items:
        try:
            if it.target is not None:
                it.seq = with_target(tok, it.prompt, it.target)
                n_prompt = it.seq.prompt_len
            else:
                ids = encode_prompt(tok, it.prompt, flag)
                n_prompt = len(ids)
            if max_tokens is not None and n_prompt > max_tokens:
                raise UserError(f"--max-tokens {max_tokens}: the prompt has {n_prompt} tokens")
            if it.target is None:
                to_generate.append((it, ids))
        except UserError as err:
            if not isolate:
                raise
            it.error = str(err)
    mine = _my_groups(to_generate, batch_size, shard)
    if mine:
        seqs = greedy(lm.model, tok, [ids for _, ids in mine], max_new_tokens, batch_size)
        for (it, _), seq in zip(mine, seqs):
            it.seq = seq
    if shard and dist.active():  # every rank's continuations, on every rank
        by_index = {it.index: it for it in items}
        for part in dist.gather_objects({it.index: it.seq for it, _ in mine}):
            for index, seq in part.items():
                by_index[index].seq = seq


def _failure(err: BaseException, prefix: str = "") -> str:
    text = str(err).splitlines()[0][:200] if str(err) else ""
    return f"{prefix}{type(err).__name__}: {text}"


def attribute_all(items: list[Item], lm, eng: str, method: str, *, score: str, ig_steps: int,
                  batch_size: int, shard: bool = False, count: bool = True, checkpoint_every: int = 0,
                  part: str = "") -> dict[int, Attribution]:
    """Attribute every prepared item with one model; a failing batch is retried prompt by prompt.

    ``shard``: this rank attributes its block of the groups of ``batch_size`` (the inseq engine: of single
    prompts); every rank gets every attribution and failure (``count``: tally the rank's prompts as its samples).
    ``checkpoint_every``: save this rank's progress every N groups (``part`` names the loop: one per model)."""
    todo = [it for it in items if it.error is None]
    mine = _my_groups(todo, batch_size if eng == "native" else 1, True) if shard else todo
    if shard and count:
        dist.count_samples(len(mine))
    key = {"command": "tokenlens", "model": lm.source.label, "method": method, "prompts": [it.index for it in mine]}
    prog = checkpoint.progress(checkpoint_every, key, part=part)
    out = _attribute(mine, lm, eng, method, score=score, ig_steps=ig_steps, batch_size=batch_size, prog=prog)
    if not shard or not dist.active():
        return out
    for a in out.values():
        a.matrix = a.matrix.cpu()
    by_index = {it.index: it for it in items}
    merged: dict[int, Attribution] = {}
    for chunk, failed in dist.gather_objects((out, {it.index: it.error for it in mine if it.error is not None})):
        merged.update(chunk)
        for index, error in failed.items():
            by_index[index].error = error
    return {i: merged[i] for i in sorted(merged)}


def _attribute(todo: list[Item], lm, eng: str, method: str, *, score: str, ig_steps: int,
               batch_size: int, prog: checkpoint.Progress | None = None) -> dict[int, Attribution]:
    """``prog``: the loop's saved position (groups done, their attributions and failures) and its checkpoints."""
    prog = prog or checkpoint.Progress(None)
    out: dict[int, Attribution] = dict(prog.state["out"]) if prog.state else {}
    by_index = {it.index: it for it in todo}
    for index, error in (prog.state or {}).get("errors", {}).items():
        by_index[index].error = error

    def state() -> dict:
        return {"out": out, "errors": {it.index: it.error for it in todo if it.error is not None}}

    if eng == "native":
        def one_batch(group: list[Item]) -> None:
            t0 = time.perf_counter()
            mats = engine.attribute(lm.model, lm.tokenizer, [it.seq for it in group], method, score=score,
                                    n_steps=ig_steps, batch_size=batch_size)
            dt = (time.perf_counter() - t0) / len(group)
            for it, m in zip(group, mats):
                out[it.index] = Attribution(it.seq.ids, it.seq.prompt_len, m, seconds=dt)
        starts = list(range(0, len(todo), batch_size))
        for lo in console.track(starts[prog.done:], f"{method} ({lm.source.label})"):
            group = todo[lo:lo + batch_size]
            try:
                one_batch(group)
            except (RuntimeError, ValueError, IndexError) as err:
                if len(group) == 1:
                    group[0].error = _failure(err)
                else:
                    for it in group:
                        try:
                            one_batch([it])
                        except (RuntimeError, ValueError, IndexError) as err1:
                            it.error = _failure(err1)
            prog.step(state)
        prog.finish(state)
        return out
    from .inseq_backend import InseqAttributor, to_native_json

    with InseqAttributor(lm.model, lm.tokenizer, method) as attributor:
        for it in console.track(todo[prog.done:], f"{method} via inseq ({lm.source.label})"):
            cont = lm.tokenizer.decode(it.seq.ids[it.seq.prompt_len:], skip_special_tokens=False)
            full = it.prompt + (it.target if it.target is not None else cont)
            t0 = time.perf_counter()
            try:
                mat, ids, raw = attributor.attribute(it.prompt, full, score=score, n_steps=ig_steps)
            except Exception as err:  # noqa: BLE001 - one prompt's failure is reported, the rest complete
                it.error = _failure(err, "inseq: ")
            else:
                prompt_len = len(ids) - mat.shape[1]
                out[it.index] = Attribution(ids, prompt_len, mat, inseq_json=to_native_json(raw),
                                            seconds=time.perf_counter() - t0)
            prog.step(state)
    prog.finish(state)
    return out


def write_records(run, items: list[Item], results: dict, compared: dict | None, main, other, cmd) -> list[tuple]:
    """Per prompt its record and heat map (and inseq's JSON), plus the prompts' table (``artifacts.py``); returns
    ``(item, record or None, status row)`` per prompt."""
    generation = {"max_new_tokens": cmd.max_new_tokens, "do_sample": False, "strategy": "greedy"}
    extra = {"engine": cmd.attribution_engine, "score": cmd.score, "dtype": cmd.compared.dtype}
    if cmd.method == "integrated_gradients":
        extra["n_steps"] = cmd.ig_steps
    tok = main.tokenizer
    out = []
    for it in items:
        res = results.get(it.index)
        other_res = compared.get(it.index) if compared is not None else None
        if it.error is None and res is None:
            it.error = "attribution failed"
        if it.error is None and compared is not None:
            if other_res is None:
                it.error = "attribution with the --base model failed"
            elif other_res.ids != res.ids:
                it.error = "the two models' inseq tokenizations of the continuation differ"
        if it.error is not None:
            out.append((it, None, {"index": it.index, "line": it.line, "prompt": it.prompt, "status": "failed",
                                   "error": it.error}))
            continue
        gen = dict(generation, target=it.target) if it.target is not None else generation
        cmp = (other.source.spec, other_res) if other is not None else None
        rec = record(res, tok, llm_id=main.source.spec, prompt=it.prompt, method=cmd.method, generation=gen,
                     extra_meta={**extra, "prompt_index": it.index}, compare=cmp)
        index = prompt_index(it.index)
        write_json(run.file(PROMPT_JSON.path(index=index)), rec)
        write_text(run.file(PROMPT_HTML.path(index=index)), render(rec))
        if res.inseq_json is not None:
            write_text(run.file(PROMPT_INSEQ.path(index=index)), res.inseq_json)
        if other_res is not None and other_res.inseq_json is not None:
            write_text(run.file(PROMPT_COMPARE_INSEQ.path(index=index)), other_res.inseq_json)
        out.append((it, rec, {"index": it.index, "line": it.line, "prompt": it.prompt, "status": "ok",
                              "generated": tok.decode(res.ids[res.prompt_len:], skip_special_tokens=False),
                              "input_tokens": len(res.ids), "output_tokens": res.matrix.shape[1],
                              "seconds": round(res.seconds, 4)}))
    if not any(rec is not None for _, rec, _ in out):
        first = next(row for _, _, row in out)
        raise UserError(f"every prompt failed (first: prompt #{first['index']}: {first.get('error')})")
    write_json(run.file(PROMPTS.path()), [row for _, _, row in out])
    run.metadata.update(models={"model": main.source.spec, **({"base": other.source.spec} if other else {})})
    return out


def headline(rows: list[tuple], cmd):
    """The run's headline: per prompt the generated text and the top attributed input token of its first step."""
    from ...core.spine.command import Result

    prompts, lines, failures = [], [], []
    for it, rec, row in rows:
        if rec is None:
            where = f" (line {it.line})" if it.line else ""
            failures.append(f"prompt #{it.index}{where} failed: {it.error}")
            prompts.append({"index": it.index, "status": "failed", "error": it.error})
            continue
        prompts.append({"index": it.index, "status": "ok", "generated": row["generated"], **first_step(rec)})
        if len(lines) < 10:
            lines.append(f"{it.prompt[:50]!r}: {summary_line(rec)}")
    for text in failures:
        console.info(text)
    ok = sum(p["status"] == "ok" for p in prompts)
    lines += failures
    lines.append(f"attributed {ok}/{len(prompts)} prompts with {cmd.method} ({cmd.attribution_engine} engine)")
    head = {"method": cmd.method, "engine": cmd.attribution_engine, "succeeded": ok, "failed": len(prompts) - ok,
            "prompts": prompts}
    return Result(head, lines)
