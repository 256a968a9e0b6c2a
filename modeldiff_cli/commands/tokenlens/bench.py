"""`tokenlens bench`: every model x method pair on a prompt set; timings, success rates, errors, system info."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ...core import console
from ...core.artifacts import write_csv, write_json, write_jsonl, write_text
from ...core.errors import UserError
from ...core.rundir import config_hash, run_directory, slug
from .pipeline import AttributeOptions, Item, attribute_all, prepare, resolve_engine

COLUMNS = ["model", "method", "engine", "prompt_index", "status", "load_s", "generate_s", "attribute_s",
           "output_tokens", "tokens_per_s", "error"]


@dataclass
class BenchOptions:
    models: str
    methods: str
    prompts: Path | None
    engine: str
    max_new_tokens: int
    ig_steps: int
    out: Path
    device: str
    dtype: str
    batch_size: int
    max_samples: int | None
    text_field: str
    overwrite: bool


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


def _prompts(o: BenchOptions) -> tuple[list[str], str]:
    from ...core.data import read_records

    if o.prompts is not None:
        recs = read_records(o.prompts, o.text_field, "--prompts", o.max_samples)
        return [r.text or "" for r in recs], str(o.prompts)
    from ...organisms import get_organism

    path = get_organism("cake").data("base")
    recs = read_records(path, "text", "--prompts", o.max_samples or 4)
    return [" ".join((r.text or "").split()[:8]) for r in recs], str(path)


def run(o: BenchOptions) -> Path:
    from ...core.models import load_model, resolve_device, resolve_source

    models = [m.strip() for m in o.models.split(",") if m.strip()]
    methods = [m.strip() for m in o.methods.split(",") if m.strip()]
    if not models:
        raise UserError("--models: give at least one model")
    if not methods:
        raise UserError("--methods: give at least one method")
    engines = {m: resolve_engine(m, o.engine) for m in methods}
    sources = [resolve_source(m, flag="--models") for m in models]
    prompts, prompts_src = _prompts(o)
    device = resolve_device(o.device)
    config = {"models": [s.fingerprint for s in sources], "methods": methods, "engine": o.engine,
              "prompts": prompts, "max_new_tokens": o.max_new_tokens, "ig_steps": o.ig_steps, "dtype": o.dtype}
    parts = ["tokenlens-bench", slug(f"{len(models)}models-{len(methods)}methods-{config_hash(config)}")]
    with run_directory(o.out, parts, config, command="tokenlens bench", overwrite=o.overwrite) as run_dir:
        if run_dir.reused:
            console.info(f"reusing the complete run in {run_dir.path} (pass --overwrite to recompute)")
            _say(Path(run_dir.path / "summary.txt").read_text().rstrip())
            console.done(run_dir.path)
            return run_dir.path
        rows, errors = [], []
        for src in sources:
            t0 = time.perf_counter()
            try:
                lm = load_model(src, dtype=o.dtype, device=device, flag="--models")
            except UserError as err:
                for m in methods:
                    for i in range(len(prompts)):
                        rows.append(_row(src.spec, m, engines[m], i, None, 0, 0, 0, str(err)))
                errors.append({"model": src.spec, "stage": "load", "error": str(err)})
                continue
            load_s = time.perf_counter() - t0
            for m in methods:
                for i, p in console.track(list(enumerate(prompts)), f"{src.label} {m}"):
                    rows.append(_one(lm, src.spec, m, engines[m], i, p, load_s, o, errors))
            del lm
        summary = _summary(rows)
        info = system_info(device)
        write_csv(run_dir.file("timings.csv"), rows, COLUMNS)
        write_jsonl(run_dir.file("errors.jsonl"), errors)
        write_json(run_dir.file("system_info.json"), info)
        write_json(run_dir.file("summary.json"), {"pairs": summary, "prompts": prompts_src, "n_prompts": len(prompts),
                                                  "system": info})
        text = _report(summary, info, len(prompts))
        write_text(run_dir.file("summary.txt"), text)
        _say(text.rstrip())
    console.done(run_dir.path)
    return run_dir.path


def _row(model, method, eng, index, load_s, gen_s, attr_s, n_out, error=None) -> dict:
    return {"model": model, "method": method, "engine": eng, "prompt_index": index,
            "status": "failed" if error else "ok", "load_s": None if load_s is None else round(load_s, 4),
            "generate_s": round(gen_s, 4), "attribute_s": round(attr_s, 4), "output_tokens": n_out,
            "tokens_per_s": round(n_out / attr_s, 4) if not error and attr_s > 0 else None, "error": error}


def _one(lm, spec, method, eng, index, prompt, load_s, o: BenchOptions, errors: list) -> dict:
    opts = AttributeOptions(model=spec, compare=None, prompt=None, prompts=Path("-"), method=method, engine=eng,
                            max_new_tokens=o.max_new_tokens, target=None, score="probability", ig_steps=o.ig_steps,
                            json_out=None, html_out=None, out=o.out, device=o.device, dtype=o.dtype, batch_size=1,
                            max_samples=None, text_field=o.text_field, seed=0, overwrite=False)
    item = Item(index, prompt, None)
    t0 = time.perf_counter()
    try:
        prepare([item], lm, opts)
        t1 = time.perf_counter()
        res = attribute_all([item], lm, eng, opts) if item.error is None else {}
    except Exception as err:  # noqa: BLE001 - a failure does not stop the benchmark
        item.error, t1 = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}", t0
        res = {}
    t2 = time.perf_counter()
    if item.error is None and index not in res:
        item.error = "no attribution produced"
    if item.error:
        errors.append({"model": spec, "method": method, "prompt_index": index, "prompt": prompt, "error": item.error})
        return _row(spec, method, eng, index, load_s, t1 - t0, t2 - t1, 0, item.error)
    return _row(spec, method, eng, index, load_s, t1 - t0, t2 - t1, res[index].matrix.shape[1])


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


def _say(text: str) -> None:
    """A result line on stdout, printed verbatim (no rich markup or :emoji: codes: `organism:cake:ft`)."""
    console.out.print(text, markup=False, emoji=False, highlight=False)
