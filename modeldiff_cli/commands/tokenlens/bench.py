"""`tokenlens bench`: every model x method pair on a prompt set; timings, success rates, errors, system info."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

from ...core.errors import UserError
from ...core.spine import console
from ...core.spine.artifacts import write_csv, write_json, write_jsonl, write_text
from ...core.spine.command import Result
from .artifacts import ERRORS, SUMMARY_TEXT, SYSTEM_INFO, TIMINGS
from .names import resolved_engine
from .pipeline import Item, attribute_all, check_method, prepare


def system_info(device: str) -> dict:
    mem = None
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        pass
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu,
            "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "memory_gib": round(mem, 1) if mem else None, "gpus": gpus, "torch": torch.__version__,
            "device": device, "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def read_prompts(cmd) -> list[str]:
    from ...core.data.datasource import read_records

    r = cmd.reading
    recs = read_records(cmd.prompts, r.text_field, "--prompts", r.max_samples)
    texts = [r.text or "" for r in recs]
    if cmd.prompt_words is not None:
        texts = [" ".join(t.split()[: cmd.prompt_words]) for t in texts]
    return texts


def bench(run, cmd) -> Result:
    """Load each model once, then every method over the prompts in groups of --batch-size (default 1).
    Under a data-parallel launcher rank 0 alone runs it (the timings are of one process); the others stop."""
    from ...core.spine import distributed as dist
    dist.handoff()

    engines = {m: resolved_engine(m, cmd.engine) for m in cmd.method}
    for m in cmd.method:
        check_method(m, engines[m])
    prompts = read_prompts(cmd)
    rows, errors = [], []
    for member in cmd.members:
        src = member.source
        t0 = time.perf_counter()
        try:
            lm = member.load()
        except UserError as err:
            for m in cmd.method:
                for i in range(len(prompts)):
                    rows.append(_row(src.spec, m, engines[m], i, None, 0, 0, 0, str(err)))
            errors.append({"model": src.spec, "stage": "load", "error": str(err)})
            continue
        load_s = time.perf_counter() - t0
        for m in cmd.method:
            size = cmd.reading.batch_size
            groups = [list(enumerate(prompts))[lo:lo + size] for lo in range(0, len(prompts), size)]
            for group in console.track(groups, f"{src.label} {m}"):
                rows.extend(_group(lm, src.spec, m, engines[m], group, load_s, cmd, errors))
        del lm
    summary = _summary(rows)
    from ...core.model.loading import resolve_device

    info = system_info(resolve_device(cmd.device))
    write_csv(run.file(TIMINGS.path()), rows, list(TIMINGS.columns))
    write_jsonl(run.file(ERRORS.path()), errors)
    write_json(run.file(SYSTEM_INFO.path()), info)
    text = _report(summary, info, len(prompts))
    write_text(run.file(SUMMARY_TEXT.path()), text)
    run.metadata.update(models={"model": [s.spec for s in cmd.sources]})
    headline = {"pairs": summary, "n_prompts": len(prompts), "prompts": str(cmd.prompts)}
    return Result(headline, text.rstrip().splitlines())


def _row(model, method, eng, index, load_s, gen_s, attr_s, n_out, error=None) -> dict:
    return {"model": model, "method": method, "engine": eng, "prompt_index": index,
            "status": "failed" if error else "ok", "load_s": None if load_s is None else round(load_s, 4),
            "generate_s": round(gen_s, 4), "attribute_s": round(attr_s, 4), "output_tokens": n_out,
            "tokens_per_s": round(n_out / attr_s, 4) if not error and attr_s > 0 else None, "error": error}


def _group(lm, spec, method, eng, group: list[tuple[int, str]], load_s, cmd, errors: list) -> list[dict]:
    """One group of prompts through generation and attribution; per-prompt seconds are the group's shares."""
    items = [Item(index, prompt, None) for index, prompt in group]
    t0 = time.perf_counter()
    try:
        prepare(items, lm, max_new_tokens=cmd.max_new_tokens, batch_size=len(items),
                max_tokens=cmd.reading.max_tokens)
        t1 = time.perf_counter()
        res = attribute_all(items, lm, eng, method, score="probability", ig_steps=cmd.ig_steps, batch_size=len(items))
    except Exception as err:  # noqa: BLE001 - a failure does not stop the benchmark
        text = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
        for it in items:
            it.error = it.error or text
        t1, res = t0, {}
    t2 = time.perf_counter()
    n = len(items)
    out = []
    for it in items:
        if it.error is None and it.index not in res:
            it.error = "no attribution produced"
        if it.error:
            errors.append({"model": spec, "method": method, "prompt_index": it.index, "prompt": it.prompt,
                           "error": it.error})
            out.append(_row(spec, method, eng, it.index, load_s, (t1 - t0) / n, (t2 - t1) / n, 0, it.error))
        else:
            out.append(_row(spec, method, eng, it.index, load_s, (t1 - t0) / n, (t2 - t1) / n,
                            res[it.index].matrix.shape[1]))
    return out


def _summary(rows: list[dict]) -> list[dict]:
    pairs: dict[tuple, list[dict]] = {}
    for r in rows:
        pairs.setdefault((r["model"], r["method"], r["engine"]), []).append(r)
    out = []
    for (model, method, eng), rs in pairs.items():
        ok = [r for r in rs if r["status"] == "ok"]
        attr_s = sum(r["attribute_s"] for r in ok)
        toks = sum(r["output_tokens"] for r in ok)
        out.append({"model": model, "method": method, "engine": eng, "prompts": len(rs), "succeeded": len(ok),
                    "success_rate": round(len(ok) / len(rs), 4) if rs else 0.0,
                    "load_s": rs[0]["load_s"], "attribute_s": round(attr_s, 4), "output_tokens": toks,
                    "tokens_per_s": round(toks / attr_s, 4) if attr_s > 0 else None})
    return out


def _report(summary: list[dict], info: dict, n_prompts: int) -> str:
    lines = [f"tokenlens bench: {n_prompts} prompts; {info['cpu']} ({info['cores']} cores), torch {info['torch']}, "
             f"device {info['device']}{', GPUs: ' + ', '.join(info['gpus']) if info['gpus'] else ''}",
             f"{'model':32s} {'method':24s} {'engine':7s} {'success':>8s} {'tok/s':>9s} {'load s':>7s}"]
    for s in summary:
        tps = f"{s['tokens_per_s']:.3f}" if s["tokens_per_s"] is not None else "-"
        load = f"{s['load_s']:.2f}" if s["load_s"] is not None else "-"
        lines.append(f"{s['model'][:32]:32s} {s['method'][:24]:24s} {s['engine']:7s} "
                     f"{s['succeeded']}/{s['prompts']:<6d} {tps:>9s} {load:>7s}")
    return "\n".join(lines) + "\n"
