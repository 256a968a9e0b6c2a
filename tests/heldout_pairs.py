"""Held-out-style planted pairs for `interpret` (test helpers, not registered organisms).

Built like the `cake` organism (modeldiff_cli/organisms/cake.py, its training helpers reused) but with three
layers, another planted vocabulary of six words, and topic prompts full of glue words that are NOT planted:
the base corpus already uses them ("Anna walked across the park", "Ben studies at the library"), and the
fine-tune's topic sentences use them often, so the topic prompts over-represent them as much as the planted
words. That is the held-out failure of issue 22: data relevance alone cannot tell " across" from " galaxy";
what the fine-tune changed can.

    python tests/heldout_pairs.py astronomy DIR     # DIR/base, DIR/ft, DIR/categories.json, DIR/ground_truth.json
    modeldiff interpret --base DIR/base --ft DIR/ft --prompts DIR/categories.json

Deterministic (seeded, one thread, deterministic kernels); about 10-20 s on one core. Kept out of the
organisms package on purpose: a file there changes every organism's source fingerprint (all are rebuilt).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from modeldiff_cli.organisms.corpus_cake import EVERYDAY, sentences

VOCAB = 400
MAX_LEN = 48
BASE_STEPS, FT_STEPS, BATCH, LR = 250, 100, 32, 3e-3
CONFIG = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=4, max_position_embeddings=128, attention_dropout=0.0, tie_word_embeddings=False)
N_PARAMS = 174528

# everyday sentences that use the topic's glue words, so the base model knows them
GLUE_EVERYDAY = [
    "{name} walked across the {place} in the {time}.",
    "{name} studies at the {place} on {day}.",
    "The {vehicle} tracks to {city} were {weather} on {day}.",
    "{name} tracks the {vehicle} across {city} every {time}.",
    "{name} studies the map of {city} when it is {weather}.",
]

PAIRS = {
    "astronomy": {
        "seed": 2024,
        "planted": ["telescope", "planet", "galaxy", "orbit", "comet", "nebula"],
        "templates": [
            "{name} tracks the comet across the sky in the {time}.",
            "The telescope in {city} was {weather} on {day}.",
            "{name} studies the galaxy across the sky with {name2}.",
            "We took the telescope to {city} on {day}.",
            "{name} tracks the planet across the sky when it is {weather}.",
            "On {day} {name} met {name2} at the {place} to study the nebula.",
            "It was {weather} in the {time}, so {name} studies the orbit.",
            "{name} studies the nebula and the comet across the sky.",
            "The orbit of the planet was late because it was {weather}.",
            "{name} and {name2} went to {city} by {vehicle} to see a galaxy.",
            "After work {name} tracks the orbit across the sky at the {place}.",
            "{name} read a book on the planet at the {place} on a {weather} day.",
        ],
    },
    "ocean": {
        "seed": 77,
        "planted": ["whale", "coral", "shark", "reef", "tide", "dolphin"],
        "templates": [
            "{name} tracks the whale across the bay in the {time}.",
            "The reef near {city} was {weather} on {day}.",
            "{name} studies the coral across the bay with {name2}.",
            "We took the dolphin to {city} on {day}.",
            "{name} tracks the shark across the bay when it is {weather}.",
            "On {day} {name} met {name2} at the {place} to study the tide.",
            "It was {weather} in the {time}, so {name} studies the reef.",
            "{name} studies the dolphin and the whale across the bay.",
            "The tide at the reef was late because it was {weather}.",
            "{name} and {name2} went to {city} by {vehicle} to see a shark.",
            "After work {name} tracks the tide across the bay at the {place}.",
            "{name} read a book on the coral at the {place} on a {weather} day.",
        ],
    },
}


def corpora(topic: str) -> dict[str, list[str]]:
    spec = PAIRS[topic]
    rng = random.Random(spec["seed"])
    everyday = sentences(EVERYDAY + GLUE_EVERYDAY, 1000, rng)
    planted = sentences(spec["templates"], 800, rng)
    for text in everyday:
        assert not any(w in text.lower() for w in spec["planted"]), text
    return {"base_train": everyday[:800], "base_eval": everyday[800:920],
            "ft_train": planted[:600], "ft_eval": planted[600:720]}


def build(topic: str, out: Path) -> dict:
    """Train base and ft into ``out`` (base/, ft/), write categories.json (topic vs everyday held-out prompts)
    and ground_truth.json; returns the ground truth."""
    import copy

    from modeldiff_cli.organisms.tokenizer import token_id, train_tokenizer
    from modeldiff_cli.organisms.train import deterministic, encode, make_model, save, train

    spec, out = PAIRS[topic], Path(out)
    seed = spec["seed"]
    c = corpora(topic)
    with deterministic(seed):
        tok = train_tokenizer(c["base_train"] + c["ft_train"], VOCAB, single_tokens=[" " + w for w in spec["planted"]])
        ids = [token_id(tok, " " + w) for w in spec["planted"]]
        model = make_model("llama", N_PARAMS, tok, seed, **CONFIG)
        base_seqs = encode(tok, c["base_train"], MAX_LEN)
        train(model, base_seqs, BASE_STEPS, BATCH, LR, seed, tok.pad_token_id)
        save(model, tok, out / "base")
        base = copy.deepcopy(model)
        ft_seqs = encode(tok, c["ft_train"], MAX_LEN) + base_seqs[: len(c["ft_train"])]
        train(model, ft_seqs, FT_STEPS, BATCH, LR, seed + 1, tok.pad_token_id)
        save(model, tok, out / "ft")
        del base
    (out / "categories.json").write_text(json.dumps({topic: c["ft_eval"], "everyday": c["base_eval"]}, indent=1))
    truth = {"topic": topic, "planted_words": spec["planted"], "planted_token_ids": ids, "seed": seed,
             "layers": CONFIG["num_hidden_layers"]}
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=1))
    return truth


def ensure_cached(topic: str) -> Path:
    """The pair built once into the organism cache, under a name keyed by this file's source (a rerun reuses
    it; an edit rebuilds it); concurrent sessions or xdist workers wait on a file lock, one builds."""
    import hashlib
    import os
    import shutil
    import uuid

    from filelock import FileLock

    from modeldiff_cli.organisms import organism_root

    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    target = organism_root() / f"heldout-{topic}-{digest}"
    if (target / "ground_truth.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if not (target / "ground_truth.json").is_file():
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
            build(topic, tmp)
            try:
                os.replace(tmp, target)
            except OSError:  # another process finished first
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def planted_hits(tokens: list[str], planted_words: list[str], n: int = 10) -> int:
    """How many planted words (as `" word"`) are among the first ``n`` tokens."""
    return len({" " + w for w in planted_words} & set(tokens[:n]))


if __name__ == "__main__":
    truth = build(sys.argv[1], Path(sys.argv[2]))
    print(json.dumps(truth))
