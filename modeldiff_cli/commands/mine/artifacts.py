"""Everything `mine` writes, declared once (``core.spine.declared``): the writer (``write.py``, ``plots.py``),
summary.json's descriptions, ``--help``, the agent payload (``payload.py``) and the report's renderer
(``report/renderers/mine.py``) read names and keys here. Light: no torch, no numpy.

Families, per dataset and per ordering: ``{dataset}`` is a dataset's name; ``{variant}`` the NMF settings
(``binary_k5``: :func:`nmf_variant`); ``{topic}`` an NMF topic's index; ``{folder}`` an ordering's folder with its
dataset (``top_k_occurring/base``) and ``{ordering}`` the stem of its plots inside it
(``top_k_occurring/base/top_k_occurring``): :func:`ordering_paths`. Order matters: the first matching glob
describes a file, so the specific ones come first."""

from __future__ import annotations

import re

from ...core.spine.declared import Artifact, option_set

TOP_K, FRACTION, NMF = "top-k-occurring", "fraction-positive-diff", "nmf"
FOLDERS = {TOP_K: "top_k_occurring", FRACTION: "fraction_positive_diff"}  # an ordering's folder (and plot stem)
ORDERING_KEYS = ("dataset", "ordering_type", "orderings")  # an orderings.json
ORDERING = ("ordering_id", "display_label", "tokens", "metadata")  # one ordering (an NMF topic_{i}.json)


def _orderings(cmd) -> list[str]:
    return cmd.ordering_list


def _has(kind: str):
    return lambda cmd: kind in _orderings(cmd)


def _plots_of(*kinds: str):
    return lambda cmd: cmd.plots and any(k in _orderings(cmd) for k in kinds)




GLOBAL_STATS = Artifact(
    "{dataset}_global_token_stats.json", "payload",
    "per token id of one dataset: display string, sum of logit diffs (ft - base), count of positive diffs, counts in the per-position top-K promoted / suppressed",
    columns=("dataset", "total_positions", "top_k", "vocab_size", "position_bin_width", "position_bins", "token_str",
             "sum_logit_diff", "count_positive_diff", "count_topk_positive", "count_topk_negative"))
LIKELIHOOD_RATIOS = Artifact(
    "{dataset}_sequence_likelihood_ratios.json", "payload",
    "--likelihood-ratios: per sequence, log p_ft - log p_base over its scored next tokens",
    columns=("sample_index", "scored_tokens", "logp_base", "logp_ft", "log_likelihood_ratio",
             "mean_log_ratio_per_token"),
    when="--likelihood-ratios", made=option_set("likelihood_ratios"))
# its top-level keys are the dataset names, each a list of {ordering_id, display_label, file}: no fixed keys
INDEX = Artifact("orderings_index.json", "payload", "per dataset, every ordering written: ordering_id, display label and file")


def _orderings_file(kind: str, folder: str, description: str) -> Artifact:
    """An ordering's ``orderings.json`` (one per dataset), written when ``kind`` is in --orderings."""
    return Artifact(f"{folder}/{{dataset}}/orderings.json", "payload", description, columns=ORDERING_KEYS,
                    when=f"the {kind} ordering", made=_has(kind))


TOP_K_ORDERINGS = _orderings_file(TOP_K, FOLDERS[TOP_K],
                                  "tokens ranked by % of positions where they are among the K most promoted")
FRACTION_ORDERINGS = _orderings_file(
    FRACTION, FOLDERS[FRACTION], "tokens ranked by the fraction of positions where the ft logit exceeds the base logit")
NMF_ORDERINGS = _orderings_file(NMF, "nmf_{variant}", "every NMF topic of the dataset as an ordering (tokens by topic weight)")
NMF_TOPICS = Artifact(
    "nmf_{variant}/{dataset}/topics.json", "payload",
    "NMF topics: mass, prevalence, pairwise cosine, iterations and backend used",
    columns=("dataset", "topics", "mass", "prevalence", "pairwise_cosine", "iterations", "backend"),
    when="the nmf ordering", made=_has(NMF))
NMF_TOPIC_BAR = Artifact(
    "nmf_{variant}/{dataset}/topic_{topic}_bar.png", "plot", "bar chart of an NMF topic's top tokens by weight",
    when="--plots and the nmf ordering", made=_plots_of(NMF))
NMF_TOPIC_SCATTER = Artifact(
    "nmf_{variant}/{dataset}/topic_{topic}_scatter.png", "plot",
    "an NMF topic's token weights against their average logit diff",
    when="--plots and the nmf ordering", made=_plots_of(NMF))
NMF_TOPIC = Artifact(
    "nmf_{variant}/{dataset}/topic_{topic}.json", "payload",
    "one NMF topic as an ordering (tokens by weight; metadata: mass, prevalence, backend, matrix shape)",
    columns=ORDERING, when="the nmf ordering", made=_has(NMF))
POSITIONS_PLOT = Artifact(
    "{folder}/positions.png", "plot",
    "where in the sequence (16 position bins) the top promoted tokens are in the top-K",
    when="--plots and the top-k-occurring ordering", made=_plots_of(TOP_K))
ORDERING_BAR = Artifact(
    "{ordering}_bar.png", "plot", "bar chart of the ordering's top tokens by ordering value",
    when="--plots", made=_plots_of(TOP_K, FRACTION))
ORDERING_SCATTER = Artifact(
    "{ordering}_scatter.png", "plot", "ordering value against average logit diff (ft - base) of the listed tokens",
    when="--plots", made=_plots_of(TOP_K, FRACTION))

ARTIFACTS = (GLOBAL_STATS, LIKELIHOOD_RATIOS, INDEX, TOP_K_ORDERINGS, FRACTION_ORDERINGS, NMF_ORDERINGS, NMF_TOPICS,
             NMF_TOPIC_BAR, NMF_TOPIC_SCATTER, NMF_TOPIC, POSITIONS_PLOT, ORDERING_BAR, ORDERING_SCATTER)
ORDERING_FILES = {TOP_K: TOP_K_ORDERINGS, FRACTION: FRACTION_ORDERINGS}  # an ordering kind's orderings.json


def nmf_variant(cmd) -> str:
    """The ``{variant}`` of the NMF folder ``nmf_{variant}``: ``{mode}_k{topics}``."""
    return f"{cmd.nmf_mode}_k{cmd.nmf_topics}"


def ordering_paths(kind: str, dataset: str) -> dict[str, str]:
    """The values of an ordering's files: ``dataset``, ``folder`` (``top_k_occurring/base``) and ``ordering``
    (the stem of its plots, ``top_k_occurring/base/top_k_occurring``)."""
    folder = f"{FOLDERS[kind]}/{dataset}"
    return {"dataset": dataset, "folder": folder, "ordering": f"{folder}/{FOLDERS[kind]}"}


def _matcher(artifact: Artifact) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", artifact.pattern)  # literal, field, literal, field, ...
    return re.compile("".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts)))


def locate(path: str) -> tuple[Artifact, dict[str, str]] | None:
    """The declared ordering file an ``orderings_index.json`` entry names (``file``), with its placeholder values;
    None for a file no ordering artifact declares."""
    for artifact in (*ORDERING_FILES.values(), NMF_TOPIC, NMF_ORDERINGS):
        found = _matcher(artifact).fullmatch(path)
        if found:
            return artifact, found.groupdict()
    return None
