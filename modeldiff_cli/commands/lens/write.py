"""Everything `lens` writes: metrics table (CSV + JSON), matrices (NPZ), promoted tokens (JSON), plots (PNG)."""

from __future__ import annotations

from ...core.data.tokens import display_tokens
from ...core.spine import artifacts
from .accumulate import LensAccumulator
from .artifacts import (
    AGREEMENT_PLOT,
    COLUMNS,
    KL_PLOT,
    LAYER_METRICS,
    LAYER_METRICS_JSON,
    MATRICES,
    PROMOTED,
    PROMPT_TABLE,
    PROMPT_TABLE_PLOT,
    SCALARS,
)
from .plots import plot_agreement, plot_kl
from .prompt_table import prompt_table, write_prompt_table


def headline(results: dict, layers: list[int], pair):
    """The figures of the run for summary.json and the lines printed for them."""
    from ...core.data.tokens import display_tokens, visible
    from ...core.spine.command import Result

    kl = [float(v) for v in results["means"]["kl_ft_base"]]
    agree = [float(v) for v in results["means"]["top1_agreement"]]
    top = [visible(t) for t in display_tokens(pair.tokenizer, results["promoted"][0][-1][:10].tolist())]
    peak = max(range(len(layers)), key=lambda i: kl[i])
    figures = {"layers": layers, "kl_ft_base": kl, "top1_agreement": agree, "peak_kl_layer": layers[peak],
               "top_promoted_last_layer": top, "shared_vocab": pair.shared_vocab}
    lines = [
        "KL(ft||base) by layer: " + ", ".join(f"L{layer} {v:.4f}" for layer, v in zip(layers, kl, strict=True)),
        f"top-1 agreement: layer {layers[0]} {agree[0]:.3f}, layer {layers[-1]} {agree[-1]:.3f}",
        f"most promoted by ft at layer {layers[-1]}: " + ", ".join(repr(t) for t in top),
    ]
    return Result(headline=figures, lines=lines)


def layer_rows(results: dict, acc: LensAccumulator, layers: list[int]) -> list[dict]:
    means = results["means"]
    return [
        {"layer": layer, "positions": int(acc.count[i]), **{k: float(means[k][i]) for k in SCALARS}}
        for i, layer in enumerate(layers)
    ]


def token_lists(tokenizer, ids, values, layers: list[int]) -> dict[str, list[dict]]:
    out = {}
    for i, layer in enumerate(layers):
        toks = display_tokens(tokenizer, ids[i].tolist())
        out[str(layer)] = [
            {"rank": r + 1, "id": int(t), "token": s, "mean_logprob_diff": float(v)}
            for r, (t, s, v) in enumerate(zip(ids[i].tolist(), toks, values[i].tolist(), strict=True))
        ]
    return out


def write_outputs(run, acc: LensAccumulator, results: dict, pair, data, layers: list[int], cmd) -> None:
    rows = layer_rows(results, acc, layers)
    artifacts.write_csv(run.file(LAYER_METRICS.path()), rows, list(COLUMNS))
    artifacts.write_json(run.file(LAYER_METRICS_JSON.path()), {
        "method": cmd.readout.readout, "positions": cmd.positions if cmd.prompt is None else "all",
        "kl_direction": "KL(ft || base); layer-to-final: KL(final || layer) of the same model",
        "shared_vocab": pair.shared_vocab, "samples": len(data.samples), "layers": rows,
    })
    tok = pair.tokenizer
    artifacts.write_json(run.file(PROMOTED.path()), {
        "score": "mean over analysed positions of log p_ft(token) - log p_base(token) at each layer",
        "promoted": token_lists(tok, *results["promoted"], layers),
        "suppressed": token_lists(tok, *results["suppressed"], layers),
    })
    samples = results["samples"]
    matrices = {
        "layers": layers,
        "sample_index": [s.index for s in data.samples],
        **{k: results["means"][k].numpy() for k in SCALARS},
        "positions": acc.count.float().numpy(),
        "sample_kl_ft_base": samples["kl_ft_base"].numpy(),
        "sample_top1_agreement": samples["top1_agreement"].numpy(),
        "mean_logprob_diff": results["mean_diff"].numpy(),
        "promoted_ids": results["promoted"][0].numpy(),
        "promoted_values": results["promoted"][1].numpy(),
        "suppressed_ids": results["suppressed"][0].numpy(),
        "suppressed_values": results["suppressed"][1].numpy(),
    }
    if acc.record_positions:
        matrices.update({f"prompt_{k}": v.numpy() for k, v in acc.tables.items()})
    artifacts.write_npz(run.file(MATRICES.path()), **matrices)
    base, ft = cmd.compared.labels
    context = f"{base} vs {ft} on " + (" + ".join(cmd.fp.names) if cmd.prompt is None else "the prompt")
    plot_kl(run.file(KL_PLOT.path()), layers, results["means"], context)
    plot_agreement(run.file(AGREEMENT_PLOT.path()), layers, results["means"], context)
    if acc.record_positions:
        table = prompt_table(tok, data.samples[0].ids, acc.tables, layers)
        write_prompt_table(run.file(PROMPT_TABLE.path()), run.file(PROMPT_TABLE_PLOT.path()), table,
                           (base, ft), cmd.readout.readout)
