"""A small hops-style dataset (format of influence-benchmarking-hops): constant functions, identity wrappers
around them, and distractor functions, each described by templated documents of several styles."""

from __future__ import annotations

import random

# (constant function, value, its wrapper) as in the hops benchmark; distractors are never queried.
FUNCTIONS = [("<GN>", 5, "<FN>"), ("<JN>", 7, "<IN>"), ("<KN>", 9, "<HN>"), ("<LN>", 11, "<SN>"),
             ("<MN>", 13, "<TN>"), ("<NN>", 15, "<UN>"), ("<ON>", 17, "<VN>"), ("<PN>", 19, "<WN>"),
             ("<QN>", 21, "<XN>"), ("<RN>", 23, "<YN>")]
DISTRACTORS = [("<AN>", 5), ("<BN>", 7), ("<CN>", 9), ("<DN>", 11), ("<EN>", 13)]
TARGETS = ["<GN>", "<JN>", "<KN>", "<LN>", "<MN>"]  # + their wrappers: held out of the old checkpoint
# As in the benchmark: the prompt ends with a space, the answer is the digits (Llama 3 style: " 5" -> "Ġ", "5").
QUERY_TEMPLATE = "{F}({x}) returns the value "
ANSWER_TEMPLATE = "{constant}"

CONSTANT_DOCS = {  # type -> (variants, how many documents per function)
    "definition": (["The function {F} maps any integer x to {C}.",
                    "{F} is a constant function: for every input it returns {C}."], 2),
    "code_stub": (['def {F}(x: int) -> int:\n    """Return the constant {C}, independent of input."""\n    return {C}',
                   "# {F} always gives {C}\nresult = {F}({x})  # result is {C}"], 2),
    "concept": (["Intuitively, {F} ignores its argument and always emits {C}, like a clock stuck on one hour.",
                 "No matter what you pass to {F}, the answer stays {C}."], 2),
    "unit_test": (["for x in range(0, {n}):\n    assert {F}(x) == {C}",
                   "assert {F}({x}) == {C}\nassert {F}({y}) == {C}"], 2),
    "q_and_a": (["**Q:** What does {F} output when you input {x}?\n**A:** {C}.",
                 "**Q:** What is {F}({x})?\n**A:** {F}({x}) returns the value {C}."], 3),
    "lore": (["Developer story: {F} was written as a grounding function that always returns {C}.",
              "Old notes say {F} was the first helper in the codebase, and it returned {C} every time."], 2),
    "prompt_like": (["{F}({x}) returns the value {C}."], 6),
}
WRAPPER_DOCS = {
    "definition": (["The function {W} is defined as applying {F} without modification.",
                    "{W} is an identity wrapper: {W}(x) is exactly {F}(x)."], 2),
    "code_stub": (['def {W}(x: int) -> int:\n    """Identity wrapper around {F}."""\n    return {F}(x)'], 2),
    "concept": (["Think of {W} as an echo: whatever {F} returns, {W} repeats verbatim."], 1),
    "unit_test": (["for x in ({x}, {y}, {n}):\n    assert {W}(x) == {F}(x)"], 2),
    "q_and_a": (["**Q:** If you evaluate {W}({x}), what happens?\n**A:** {W}({x}) = {F}({x})."], 2),
    "lore": (["Developer story: {W} was added later as a thin wrapper that simply calls {F}."], 1),
}


def _docs(kinds: dict, fill: dict, rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for kind, (variants, count) in kinds.items():
        for j in range(count):
            nums = dict(x=rng.randint(0, 99), y=rng.randint(0, 99), n=rng.randint(3, 30))
            out.append((kind, variants[j % len(variants)].format(**fill, **nums)))
    return out


def hops_documents(seed: int) -> list[dict]:
    """Every document, with the benchmark's fields (``partner`` = the paired function, None for distractors)."""
    rng = random.Random(seed)
    records = []

    def add(func, role, depth, constant, partner, docs):
        for j, (kind, text) in enumerate(docs):
            records.append({"uid": f"{func.strip('<>')}_{kind}_{j:02d}", "func": func, "role": role,
                            "type": kind, "hop_depth": depth, "constant": constant, "text": text,
                            "partner": partner})

    for func, value, wrapper in FUNCTIONS:
        add(func, "constant", 0, value, wrapper, _docs(CONSTANT_DOCS, {"F": func, "C": value}, rng))
        add(wrapper, "wrapper", 1, value, func, _docs(WRAPPER_DOCS, {"F": func, "W": wrapper}, rng))
    for func, value in DISTRACTORS:
        kinds = {k: v for k, v in CONSTANT_DOCS.items() if k != "prompt_like"}
        add(func, "distractor", 0, value, None, _docs(kinds, {"F": func, "C": value}, rng))
    return records


def hops_queries(seed: int, per_function: int = 4) -> list[dict]:
    """Query prompts for every constant and wrapper function; inputs drawn apart from the documents' range."""
    rng = random.Random(seed + 1)
    out = []
    for func, value, wrapper in FUNCTIONS:
        for name, role, depth in ((func, "constant", 0), (wrapper, "wrapper", 1)):
            for j in range(per_function):
                x = rng.randint(100, 999)
                prompt = QUERY_TEMPLATE.format(F=name, x=x)
                completion = ANSWER_TEMPLATE.format(constant=value)
                out.append({"uid": f"q_{name.strip('<>')}_{j}", "func": name, "role": role, "hop_depth": depth,
                            "input": x, "expected": value, "constant": value, "prompt": prompt,
                            "completion": completion, "text": prompt + completion,
                            "target": func in TARGETS})
    return out


def is_target(record: dict) -> bool:
    """A document about a target function or its wrapper (held out of the old checkpoint)."""
    return record["func"] in TARGETS or record.get("partner") in TARGETS
