"""inseq as the reference (and the route to every method the native engine lacks).

What works with inseq 0.7.1 on transformers 5 (checked on tiny Llama / GPT-2 models, offline):
- ``inseq.load_model(model_obj, method, tokenizer=tokenizer_obj)``: pass the loaded model and tokenizer
  objects, never a hub id (no download, no second copy of the weights).
- Always pass ``generated_texts`` (teacher forcing). Letting inseq generate re-tokenizes the decoded text, so a
  continuation that does not round-trip (a byte-level token split, a random model's partial UTF-8) comes back
  as different, more tokens than were generated. The command generates itself and hands inseq the text.
- Method arguments go through ``attribution_args={...}`` (e.g. ``{"n_steps": 8}`` for integrated gradients):
  as plain keyword arguments they can be dropped with an "Unused arguments during attribution" warning.
- ``batch_size=1``: ``batch_size > 1`` fails for decoder-only models ("'DecoderOnlyBatch' object has no attribute
  'sources'").
- Decoder-only attributions land in ``target_attributions`` (``[n_tokens, n_generated, ...]``); ``aggregate()``
  applies the default aggregation (L2 norm over the embedding dimension for gradient methods, mean over
  layers/heads for attention) followed by an L1 normalisation of each column.
"""

from __future__ import annotations

import functools
from contextlib import ExitStack, contextmanager

IG_METHODS = ("integrated_gradients", "layer_integrated_gradients", "sequential_integrated_gradients",
              "discretized_integrated_gradients")


@functools.lru_cache(maxsize=1)
def list_methods() -> list[str]:
    import inseq

    return sorted(inseq.list_feature_attribution_methods())


@contextmanager
def hook_guard(model):
    """Remove every forward hook inseq leaves behind (a method failing midway, e.g. value_zeroing, otherwise
    leaves hooks that break every later forward of the model)."""
    modules = list(model.modules())
    before = [(set(m._forward_hooks), set(m._forward_pre_hooks)) for m in modules]
    try:
        yield
    finally:
        for m, (fh, fph) in zip(modules, before):
            for k in set(m._forward_hooks) - fh:
                del m._forward_hooks[k]
            for k in set(m._forward_pre_hooks) - fph:
                del m._forward_pre_hooks[k]


class InseqAttributor:
    """One inseq model wrapper per (model, method); use as a context manager (eager attention, so that attention
    weights exist for `attention`/`value_zeroing`; hooks cleaned up on exit)."""

    def __init__(self, model, tokenizer, method: str):
        self.method = method
        self.tokenizer = tokenizer
        self.lm = model
        self.model = None
        self._stack = ExitStack()

    def __enter__(self):
        import inseq

        from .engine import eager_attention

        self._stack.enter_context(eager_attention(self.lm))
        self._stack.enter_context(hook_guard(self.lm))
        # inseq moves the model to CUDA whenever CUDA exists unless given its device (a device-mapped model stays)
        where = {} if getattr(self.lm, "hf_device_map", None) else {"device": str(self.lm.get_input_embeddings().weight.device)}
        self.model = inseq.load_model(self.lm, self.method, tokenizer=self.tokenizer, **where)
        return self

    def __exit__(self, *exc):
        try:
            self.model.attribution_method.unhook()
        except Exception:  # noqa: BLE001 - best effort, hook_guard removes the rest
            pass
        self._stack.close()
        return False

    def attribute(self, prompt: str, full_text: str, *, score: str = "probability", n_steps: int = 50):
        """Attribute ``full_text`` (prompt + continuation) given ``prompt``.

        Returns ``(raw_matrix [n, T] before normalisation, tokens, inseq's FeatureAttributionOutput)``; the raw
        matrix is the aggregation without the column normalisation (so it is comparable with the native one).
        """
        args = {"n_steps": n_steps} if self.method in IG_METHODS else {}
        out = self.model.attribute(
            prompt, generated_texts=full_text, attribution_args=args, attributed_fn=score if score != "logprob" else "probability",
            attributed_fn_args={"logprob": True} if score == "logprob" else {}, show_progress=False, batch_size=1,
        )
        seq = out.sequence_attributions[0]
        agg = seq.aggregate(normalize=False) if _granular(seq) else seq.aggregate()
        mat = agg.target_attributions
        if mat is None:  # encoder-style output (not expected for causal LMs)
            mat = agg.source_attributions
        mat = mat.float()
        while mat.dim() > 2:
            mat = mat.mean(-1)
        tokens = [t.id for t in seq.target]
        return mat.cpu(), tokens, out


def _granular(seq) -> bool:
    from inseq.data.attribution import GranularFeatureAttributionSequenceOutput

    return isinstance(seq, GranularFeatureAttributionSequenceOutput)


def to_native_json(out) -> str:
    """inseq's own serialisation of an attribution output (``FeatureAttributionOutput.save``'s format)."""
    import json
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inseq.json"
        out.save(str(path), overwrite=True, use_primitives=True)
        return json.dumps(json.loads(path.read_text()))

