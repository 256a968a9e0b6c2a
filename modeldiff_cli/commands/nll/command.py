"""The `nll` command: its ingredients, its own options, and ``execute()`` — the pipeline, top to bottom.

Three modes, decided by the options given:

- ``models``: ``--base`` (A) and ``--ft`` (B) on one ``--data`` source (the default: the cake organism);
- ``pairs``: one ``--model`` on the two conditions of each ``--pairs`` item;
- ``hidden``: ``--pairs`` read from precomputed ``--hidden-states-dir`` (only ``--model``'s final norm and
  lm_head load).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...core.errors import UserError
from ...core.model.sources import ModelSource
from ...core.spine.command import Command, Fingerprints, Result
from ...core.spine.compared import PAIRS, Compared
from ...core.spine.ingredients import Data, chunk_size_option
from ...core.spine.spec import option
from ...core.spine.timing import stage
from .artifacts import ARTIFACTS

JS_MODES = ("none", "all", "last")
NEEDS_PAIRS = "--hidden-states-dir needs --pairs (the token ids and positions of each item)"


@dataclass(frozen=True)
class Nll(Command):
    """Per layer: NLL -log p(target) of the next token at the scored positions for conditions A and B, the
    logit-lens score log p(target), optional JS(A, B), over all scored positions and the last one per item.

    Conditions: --base/--ft on one --data source (default: the cake organism and its base data), or one --model
    on --pairs (optionally from precomputed --hidden-states-dir); prints the run directory last.
    """

    name = "nll"
    resumable = True
    artifacts = ARTIFACTS
    modes = ("pair", PAIRS)
    organism_fill = {"base": "base", "ft": "ft", "model": "ft", "data": ("base",)}

    compared: Compared = field(default_factory=Compared)
    data: Data = field(default_factory=Data)
    hidden_states_dir: Path | None = option(None, "--hidden-states-dir", "Precomputed hidden states, one <id>.safetensors or <id>.npz per item holding 'a' and 'b' (layers x T x d each); only --model's final norm and lm_head are loaded.", result=False, data=True, modes=(PAIRS,))
    save_hidden_states: bool = option(False, "--save-hidden-states", "With --model --pairs: also write each item's hidden states into the run directory (hidden_states/<id>.npz, the --hidden-states-dir format: pass <run>/hidden_states back as --hidden-states-dir).")
    prompt_field: str = option("prompt", "--prompt-field", "Two-model mode: prompt field of prompt/completion records.")
    completion_field: str = option("completion", "--completion-field", "Two-model mode: when every record holds --prompt-field and this field, only the completion's tokens are scored.")
    chunk_size: int | None = chunk_size_option()
    js_mode: str = option("none", "--js-mode", "JS divergence between A and B at aligned positions: none, all (every scored position) or last (last scored position per item).", choices=JS_MODES)

    def __post_init__(self):
        if self.hidden_states_dir is not None and self.compared.pairs is None:
            raise UserError(NEEDS_PAIRS)
        if self.save_hidden_states and self.compared.pairs is None:
            raise UserError("--save-hidden-states works with --model and --pairs")
        if self.save_hidden_states and self.hidden_states_dir is not None:
            raise UserError("--save-hidden-states writes the states of a forward pass; with --hidden-states-dir "
                            "there is none (the states are already in that directory)")

    def preflight(self) -> None:
        """Prompt/completion records are read by --prompt-field (``core.data.pairs.items_from_data``); other data as
        every command reads it (``Data.preflight``)."""
        if self.mode == "models":
            from ...core.data.datasource import hub_offline, parse_source, read_records
            from ...core.spine.ingredients import CHECKED_RECORDS

            spec = self.data.data[0]
            if parse_source(spec).kind == "hf" and not hub_offline():
                return
            try:
                records = read_records(spec, self.prompt_field, "--data", max_samples=CHECKED_RECORDS)
            except UserError:
                records = None  # not a prompt/completion file
            if records and all(self.completion_field in r.fields for r in records):
                return
        super().preflight()

    # ---- what the run is about (no model loads) ----------------------------------------------------------
    @property
    def mode(self) -> str:
        if self.compared.pairs is None:
            return "models"
        return "hidden" if self.hidden_states_dir is not None else "pairs"

    @property
    def model_source(self) -> ModelSource:
        return self.compared.source

    @property
    def labels(self) -> tuple[str, str]:
        """Names of the two conditions."""
        return self.compared.condition_labels()

    def fingerprints(self) -> Fingerprints:
        from ...core.data.datasource import dataset_name, file_fingerprint

        if self.mode == "models":
            return Fingerprints(self.compared.labels, self.data.names, {**self.compared.fingerprint(), **self.data.fingerprint()})
        pairs = self.compared.pairs_path()
        values = {**self.compared.fingerprint(), "pairs": file_fingerprint(pairs)}
        if self.mode == "hidden":
            values["hidden_states"] = hidden_states_fingerprint(Path(self.hidden_states_dir))
        return Fingerprints(self.compared.labels, (dataset_name(pairs),), values)

    def run_name(self) -> str:
        return f"{'+'.join(self.fp.names)}-{self.mode}"

    # ---- the pipeline -------------------------------------------------------------------------------------
    def execute(self, run) -> Result:
        from .pipeline import conditions, load, score_all
        from .write import headline, write_outputs

        with stage("load models and data"):
            setup = load(self)
            cond = conditions(self, setup)
        with stage("forward and per-layer scores"):
            views = score_all(setup, cond, self, run)
        run.metadata.update(mode=setup.mode, sources=setup.sources, labels=list(setup.labels))
        with stage("write outputs"):
            summary = write_outputs(run, views, cond, setup, self)
        return headline(summary, setup.labels)


def hidden_states_fingerprint(directory: Path) -> str:
    """Digest of every (non-hidden) file of a --hidden-states-dir (names and contents, memoised)."""
    from ...core.spine.fingerprint import dir_fingerprint

    directory = directory.expanduser()
    if not directory.is_dir():
        raise UserError(f"--hidden-states-dir {directory}: no such directory")
    return dir_fingerprint(directory)
