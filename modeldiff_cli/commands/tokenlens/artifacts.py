"""Everything `tokenlens attribute` and `tokenlens bench` write, declared once (``core.spine.declared``): the
writers (``pipeline.write_records``, ``bench.bench``), the exports (``export.py``), summary.json's descriptions,
``--help`` and the report's renderer (``report/renderers/tokenlens.py``) read names and columns here.
Light: no torch."""

from __future__ import annotations

from ...core.spine.declared import Artifact


def prompt_index(index: int) -> str:
    """The ``{index}`` of a per-prompt file: the prompt's index, three digits (``prompt_007.json``)."""
    return f"{index:03d}"


def _inseq(cmd) -> bool:
    return cmd.attribution_engine == "inseq"


def _inseq_diff(cmd) -> bool:
    return cmd.compared.two_models and cmd.attribution_engine == "inseq"


# ---- tokenlens attribute (most specific patterns first: the first matching glob describes a file)
PROMPT_COMPARE_INSEQ = Artifact(
    "prompt_{index}.compare.inseq.json", "payload", "inseq's own serialisation of the --base model's attribution",
    when="--base/--ft and the inseq engine", made=_inseq_diff)
PROMPT_INSEQ = Artifact(
    "prompt_{index}.inseq.json", "payload",
    "inseq's own serialisation (FeatureAttributionOutput.save) of the attribution",
    when="the inseq engine", made=_inseq)
PROMPT_JSON = Artifact(
    "prompt_{index}.json", "payload", "per-prompt record: metadata, tokens, raw and normalised association matrices "
    "(diff mode: compare and diff matrices too)",
    columns=("metadata", "data"))
PROMPT_HTML = Artifact(
    "prompt_{index}.html", "html", "per-prompt heat map (self-contained; base/ft/diff tabs in diff mode)")
# each record: these keys; an ok prompt's also generated, input_tokens, output_tokens, seconds; a failed one's error
PROMPTS = Artifact(
    "prompts.json", "payload", "per prompt: status (ok / failed with the error), line, token counts, seconds",
    columns=("index", "line", "prompt", "status"))

ATTRIBUTE_ARTIFACTS = (PROMPT_COMPARE_INSEQ, PROMPT_INSEQ, PROMPT_JSON, PROMPT_HTML, PROMPTS)

# ---- tokenlens bench
TIMING_COLUMNS = ("model", "method", "engine", "prompt_index", "status", "load_s", "generate_s", "attribute_s",
                  "output_tokens", "tokens_per_s", "error")
SYSTEM_KEYS = ("platform", "python", "cpu", "cores", "torch_threads", "memory_gib", "gpus", "torch", "device",
               "load_average")

TIMINGS = Artifact(
    "timings.csv", "table", "per model x method x prompt: status, load / generation / attribution seconds, "
    "output tokens, tokens per second, error",
    columns=TIMING_COLUMNS)
# no declared keys: the file is empty when nothing failed (a load failure's line: model, stage, error; a
# prompt's: model, method, prompt_index, prompt, error)
ERRORS = Artifact(
    "errors.jsonl", "payload", "one line per failure (model, method, prompt index, error); empty when none")
SYSTEM_INFO = Artifact(
    "system_info.json", "payload", "platform, Python, CPU, cores, torch threads, memory, GPUs, torch, device",
    columns=SYSTEM_KEYS)
SUMMARY_TEXT = Artifact(
    "summary.txt", "text", "the report printed at the end: per pair success and tokens per second")

BENCH_ARTIFACTS = (TIMINGS, ERRORS, SYSTEM_INFO, SUMMARY_TEXT)
