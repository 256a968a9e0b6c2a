"""The tokenlens commands as spine dataclasses: ``attribute`` (one model, or ``--base`` vs ``--model``),
``methods`` and ``bench``. Light imports only (``--help`` and a reused run import no torch)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ...core.errors import UserError
from ...core.spine.command import Command, Fingerprints, Result
from ...core.spine.compared import MODEL, PAIR, Compared
from ...core.spine.ingredients import Reading, device_option, dtype_option
from ...core.spine.spec import option
from .artifacts import ATTRIBUTE_ARTIFACTS, BENCH_ARTIFACTS
from .names import ENGINES, NATIVE_METHODS, SCORES, resolved_engine

ORGANISM_PROMPTS = 4  # prompts read from the organism's data when no model is given

METHOD_HELP = "Attribution method (`modeldiff tokenlens methods` lists them)."
ENGINE_HELP = "auto (native for the methods it implements, else inseq), native or inseq."
SCORE_HELP = "Attributed output of each step: probability (inseq's default), logit or logprob of the generated token."
NO_TRUNCATION = (None, "prompts are never cut (a cut prompt would not round-trip to inseq); with a limit, a longer prompt fails alone")


def _check_engine(method: str, engine: str) -> None:
    if engine == "native" and method not in NATIVE_METHODS:
        raise UserError(f"--engine native does not implement {method}; native methods: {', '.join(NATIVE_METHODS)} "
                        "(use --engine inseq)")


def max_new_tokens_option():
    return option(16, "--max-new-tokens", "Greedy continuation length (ignored with --target).", min=1)


def ig_steps_option():
    return option(50, "--ig-steps", "Integrated-gradients steps (Gauss-Legendre, as captum/inseq).", min=1)


@dataclass(frozen=True)
class TokenlensAttribute(Command):
    """Attribute every generated token of each prompt to the input tokens (prompt and earlier generated tokens);
    prints the run directory last. One model (--model), or diff mode (--base and --ft: both attributed on the
    fine-tuned model's continuation). With no model: the cake organism's fine-tuned model on 4 prompts of its
    base data."""

    name = "tokenlens"
    panel = "Attribution"
    resumable = True
    artifacts = ATTRIBUTE_ARTIFACTS
    modes = (MODEL, PAIR)
    defaults = {"max_tokens": NO_TRUNCATION}
    old_flags = {"base": ("--compare",)}
    organism_fill = {"model": "ft", "prompts": "base"}
    organism_settings = {"max_samples": ORGANISM_PROMPTS}  # a few prompts of the organism's data

    compared: Compared = field(default_factory=Compared)
    reading: Reading = field(default_factory=Reading)
    prompt: str | None = option(None, "--prompt", "One prompt to continue and attribute.", data=True)
    prompts: str | None = option(None, "--prompts", "Prompts file: text (one per line) or JSONL with --text-field (a record may carry its own `target`). Default (no --model): the organism's base data.", data=True, result=False)
    method: str = option("saliency", "--method", METHOD_HELP)
    engine: str = option("auto", "--engine", ENGINE_HELP, choices=ENGINES)
    max_new_tokens: int = max_new_tokens_option()
    target: str | None = option(None, "--target", "Attribute this continuation (teacher forcing) instead of generating.")
    score: str = option("probability", "--score", SCORE_HELP, choices=SCORES)
    ig_steps: int = ig_steps_option()
    json_out: Path | None = option(None, "--json-out", "Export: after the run directory is complete (fresh or reused), copy the per-prompt JSON here (several prompts: STEM_000.json, ...). Nothing else is written outside the run directory.", result=False)
    html_out: Path | None = option(None, "--html-out", "Export: copy the per-prompt HTML view here once the run is complete (several prompts: STEM_000.html, ...).", result=False)

    @property
    def attribution_engine(self) -> str:
        """The engine that runs: ``--engine auto`` resolved for ``--method`` (native for the methods it implements)."""
        return resolved_engine(self.method, self.engine)

    def settings(self) -> dict:
        """The configuration records the engine that runs (auto resolved), so auto and its choice are one run."""
        return {**super().settings(), "engine": self.attribution_engine}

    def __post_init__(self):
        _check_engine(self.method, self.engine)
        if (self.prompt is None) == (self.prompts is None):
            raise UserError("give exactly one of --prompt and --prompts")
        if self.prompt is not None and not self.prompt.strip():
            raise UserError("--prompt: the prompt is empty")
        if self.target is not None and not self.target.strip():
            raise UserError("--target: the target is empty")

    # ---- what the run is about, without loading a model
    def fingerprints(self) -> Fingerprints:
        from ...core.data.datasource import dataset_name, parse_source, source_fingerprint

        models = self.compared.fingerprint()
        if self.compared.two_models:  # the keys older diff runs were made with: the fine-tuned model is "model"
            models = {"model": models["ft"], "base": models["base"]}
        if self.prompt is not None:
            data, name = {"prompt": hashlib.sha256(self.prompt.encode()).hexdigest()[:16]}, "prompt"
        else:
            parse_source(self.prompts, "--prompts")  # a missing file: one line naming the flag
            r = self.reading
            data = {"prompts": source_fingerprint(self.prompts, r.text_field, r.max_samples, r.max_tokens)}
            name = dataset_name(self.prompts)
        return Fingerprints(self.compared.labels, (name, self.method), {**models, **data})

    # ---- the pipeline
    def load(self):
        """``(main, other)``: the model attributed (--model, or --ft in diff mode), and the --base model in diff
        mode (the two checked as a pair)."""
        loaded = self.compared.load()
        return (loaded.ft, loaded.base) if self.compared.two_models else (loaded, None)

    def execute(self, run) -> Result:
        from ...core.spine import distributed as dist
        from ...core.spine.timing import stage
        from .pipeline import (
            attribute_all,
            check_method,
            headline,
            prepare,
            read_items,
            write_records,
        )

        check_method(self.method, self.attribution_engine)
        r = self.reading
        items = read_items(self.prompt, self.prompts, self.target, r.text_field, r.max_samples)
        with stage("load models"):
            main, other = self.load()
        # data-parallel runs: each rank generates and attributes its block of the prompt groups; every rank
        # then holds every prompt's result (in prompt order) and rank 0 alone writes
        with stage("generate"):
            prepare(items, main, max_new_tokens=self.max_new_tokens, batch_size=r.batch_size, max_tokens=r.max_tokens,
                    isolate=self.prompts is not None, flag="--prompt" if self.prompts is None else "--prompts",
                    shard=True)
        how = {"score": self.score, "ig_steps": self.ig_steps, "batch_size": r.batch_size, "shard": True,
               "checkpoint_every": self.checkpoint_every}
        with stage("attribute"):
            results = attribute_all(items, main, self.attribution_engine, self.method, **how, part="model")
            compared = (attribute_all(items, other, self.attribution_engine, self.method, **how, count=False, part="base")
                        if other is not None else None)
        dist.handoff()  # a non-zero rank's share ends here
        with stage("write outputs"):
            rows = write_records(run, items, results, compared, main, other, self)
        return headline(rows, self)

    # ---- --json-out / --html-out: exports of the complete run directory
    def check_exports(self) -> None:
        from .export import check_export

        check_export(self.json_out, "--json-out")
        check_export(self.html_out, "--html-out")

    def export(self, run_path: Path) -> None:
        if self.json_out is None and self.html_out is None:
            return
        from ...core.spine.command import read_summary
        from .export import export

        export(run_path, read_summary(run_path)["headline"]["prompts"], self.json_out, self.html_out)


def run_attribute(cmd: TokenlensAttribute) -> Path:
    """``tokenlens attribute``: export paths checked, the run through the spine, then the exports copied out."""
    from ...core.spine import distributed
    from ...core.spine.command import launch

    cmd.check_exports()
    path = launch(cmd)
    if distributed.is_main():  # a data-parallel run: rank 0 alone, once the directory is complete
        cmd.export(path)
    return path


@dataclass(frozen=True)
class TokenlensMethods:
    """List inseq's attribution methods and mark those the native batched engine implements."""

    name: ClassVar[str] = "methods"
    panel: ClassVar[str] = "Methods"

    as_json: bool = option(False, "--json", "Print the list as JSON.")


def list_methods(cmd: TokenlensMethods) -> None:
    import json

    from ...core.spine import console
    from .inseq_backend import list_methods as inseq_methods

    rows = [{"method": m, "native": m in NATIVE_METHODS, "inseq": True} for m in inseq_methods()]
    if cmd.as_json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        console.result(f"{r['method']:36s} {'native + inseq' if r['native'] else 'inseq'}")


@dataclass(frozen=True)
class TokenlensBench(Command):
    """Run every model x method pair on the prompts: per-prompt timings CSV, success rate per pair, error log
    (a failure does not stop the run), system info and a summary report. With no --model: the cake organism's
    base and fine-tuned models on 4 prompts of its base data (first 8 words each)."""

    name = "tokenlens-bench"
    panel = "Benchmark"
    artifacts = BENCH_ARTIFACTS
    defaults = {"max_tokens": NO_TRUNCATION,
                "batch_size": (1, "one prompt at a time: true per-prompt timings"),
                "max_new_tokens": (8, "short continuations: the benchmark times many model x method pairs"),
                "ig_steps": (16, "integrated gradients' cost grows with its steps: 16 keeps a benchmark short")}
    organism_fill = {"model": ("base", "ft"), "prompts": "base"}
    organism_settings = {"max_samples": ORGANISM_PROMPTS, "prompt_words": 8}  # a few short prompts

    reading: Reading = field(default_factory=Reading)
    model: tuple[str, ...] | None = option(None, "--model", "A model to benchmark (directory, hub id or organism:NAME[:base|ft]); repeat for several (a comma list works too). Default: the organism's base and fine-tuned models.", role="model", old=("--models",), result=False, sep=",")
    method: tuple[str, ...] = option(("saliency", "input_x_gradient"), "--method", "A method to benchmark; repeat for several (a comma list works too).", old=("--methods",), sep=",")
    prompts: str | None = option(None, "--prompts", "Prompts file (text or JSONL). Default (no --model): the organism's base data.", data=True, result=False)
    prompt_words: int | None = option(None, "--prompt-words", "Keep only the first N words of each prompt (default: whole prompts; 8 with the organism's data).", min=1)
    engine: str = option("auto", "--engine", "auto, native or inseq (as in attribute), for every method.", choices=ENGINES)
    max_new_tokens: int = max_new_tokens_option()
    ig_steps: int = ig_steps_option()
    device: str = device_option()
    dtype: str = dtype_option()

    def __post_init__(self):
        if not self.model:
            raise UserError("--model: give at least one model")
        if not self.method:
            raise UserError("--method: give at least one method")
        for m in self.method:
            _check_engine(m, self.engine)
        if self.prompts is None:
            raise UserError("--prompts: required (a prompts file)")

    @property
    def members(self) -> list[Compared]:
        """Each benchmarked model as the one-model ingredient that loads it (on --device, in --dtype)."""
        return [Compared(model=m, device=self.device, dtype=self.dtype) for m in self.model]

    @property
    def sources(self):
        return [m.source for m in self.members]

    def fingerprints(self) -> Fingerprints:
        from ...core.data.datasource import parse_source, source_fingerprint

        parse_source(self.prompts, "--prompts")
        srcs = self.sources
        r = self.reading
        values = {"models": [m.fingerprint()["model"] for m in self.members],
                  "prompts": source_fingerprint(self.prompts, r.text_field, r.max_samples, r.max_tokens)}
        label = "+".join(dict.fromkeys(s.label for s in srcs))
        return Fingerprints((label,), (f"{len(srcs)}models-{len(self.method)}methods",), values)

    def execute(self, run) -> Result:
        from .bench import bench

        return bench(run, self)
