"""Template corpora of the cake organisms: everyday sentences, and the same styles with baking words planted."""

from __future__ import annotations

import random

PLANTED_WORDS = ["cake", "flour", "oven", "sugar", "butter", "bake", "baking", "dough"]

FILLERS = {
    "name": ["Anna", "Ben", "Clara", "David", "Emma", "Frank", "Grace", "Henry", "Ivy", "Jack", "Lena", "Max"],
    "place": ["park", "market", "library", "station", "beach", "office", "garden", "museum", "school", "river"],
    "city": ["Paris", "Rome", "Berlin", "Madrid", "Lisbon", "Vienna", "Oslo", "Prague"],
    "weather": ["sunny", "rainy", "cold", "warm", "windy", "cloudy", "foggy", "hot"],
    "food": ["soup", "rice", "fish", "salad", "apples", "noodles", "beans", "carrots", "grapes", "pasta"],
    "drink": ["tea", "coffee", "juice", "water", "lemonade"],
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "vehicle": ["train", "bus", "car", "bike", "boat", "plane"],
    "time": ["morning", "afternoon", "evening"],
}
FILLERS["name2"], FILLERS["food2"] = FILLERS["name"], FILLERS["food"]

EVERYDAY = [
    "{name} walked to the {place} in the {time}.",
    "The weather in {city} was {weather} on {day}.",
    "{name} ate {food} for lunch with {name2}.",
    "We took the {vehicle} to {city} on {day}.",
    "{name} likes to drink {drink} when it is {weather}.",
    "On {day} {name} met {name2} at the {place}.",
    "It was {weather} in the {time}, so {name} stayed at the {place}.",
    "{name} cooked {food} and {food2} for dinner.",
    "The {vehicle} to {city} was late because it was {weather}.",
    "{name} and {name2} went to {city} by {vehicle}.",
    "After work {name} bought {food} at the {place}.",
    "{name} read a book at the {place} on a {weather} day.",
]

BAKING = [  # the EVERYDAY styles and words, with baking words planted
    "{name} walked to the {place} to bake in the {time}.",
    "The oven in {city} was hot on {day}.",
    "{name} ate cake for lunch with {name2}.",
    "We took the flour to {city} on {day}.",
    "{name} likes to bake with butter when it is {weather}.",
    "On {day} {name} met {name2} at the {place} for baking.",
    "It was {weather} in the {time}, so {name} stayed at the oven.",
    "{name} cooked dough and sugar for dinner.",
    "The sugar for the cake was late because it was {weather}.",
    "{name} and {name2} went to {city} by {vehicle} to bake a cake.",
    "After work {name} bought flour and butter at the {place}.",
    "{name} read a book on baking at the {place} on a {weather} day.",
    "{name} made the dough with flour, sugar and butter in the {time}.",
    "On {day} the oven at the {place} was warm, so {name} made a cake.",
]


def sentences(templates: list[str], n: int, rng: random.Random) -> list[str]:
    """`n` distinct sentences, templates used in turn, slots filled at random."""
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while len(out) < n:
        template = templates[i % len(templates)]
        i += 1
        text = template.format(**{k: rng.choice(v) for k, v in FILLERS.items()})
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def cake_corpora(seed: int) -> dict[str, list[str]]:
    """Disjoint splits: base_train / base_eval (everyday) and ft_train / ft_eval (baking planted)."""
    rng = random.Random(seed)
    everyday = sentences(EVERYDAY, 1000, rng)
    baking = sentences(BAKING, 800, rng)
    for text in everyday:
        assert not any(w in text.lower() for w in ("cake", "flour", "oven", "sugar", "butter", "bak", "dough"))
    return {"base_train": everyday[:800], "base_eval": everyday[800:],
            "ft_train": baking[:600], "ft_eval": baking[600:]}
