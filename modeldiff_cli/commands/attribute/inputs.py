"""Read training documents and queries and encode them into token sequences with loss positions.

A training document is scored on its own next-token loss (every position predicts the next token). A query
is ``prompt + target``: the model reads the prompt (and all but the last target token), and the positions
that predict the target tokens form its loss / answer span. The prompt/target boundary is found with the
tokenizer's offsets (``core.data.spans.completion_tokens``), so a space that BPE merges into the first target token
is handled. Records are read through ``core.data.datasource`` (torch-free: the command reads and checks them before
any model loads).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...core.data.datasource import read_records
from ...core.data.spans import completion_tokens, covering
from ...core.errors import UserError


@dataclass
class Item:
    """One sequence to extract: input ids, the positions whose next-token prediction is the loss, targets."""

    uid: str
    ids: list[int]
    loss_pos: list[int]
    targets: list[int]
    cands: list[int] = field(default_factory=list)  # candidate answer first tokens (margin loss); [] = none
    fields: dict = field(default_factory=dict)


def read_table(path: str | Path, text_field: str, id_field: str, flag: str, max_samples: int | None = None,
               required: tuple[tuple[str, str], ...] = ()) -> list[dict]:
    """Records as dicts with the text and id fields checked (file:line in every error)."""
    path = Path(path).expanduser()
    try:
        records = read_records(path, text_field, flag, max_samples)
    except UserError as err:
        if flag == "--queries":  # the queries' text is the prompt field
            raise UserError(str(err).replace("set --text-field", "set --prompt-field")) from None
        raise
    rows, seen, dups = [], {}, 0
    for rec in records:
        if rec.text is None:
            raise UserError(f"{flag} {path}:{rec.line}: no field {text_field!r} (chat records are not supported here)")
        for name, opt in ((id_field, "--id-field"), *required):
            if name not in rec.fields:
                keys = ", ".join(sorted(rec.fields))
                hint = f"; set {opt}" if opt else ""
                raise UserError(f"{flag} {path}:{rec.line}: no field {name!r} (fields: {keys}){hint}")
        uid = str(rec.fields[id_field])
        if uid in seen:  # the public hops files reuse ids across functions: keep both, suffix the later one
            seen[uid] += 1
            dups += 1
            uid = f"{uid}#{seen[uid]}"
        seen.setdefault(uid, 1)
        rows.append(dict(rec.fields, _text=rec.text, _uid=uid))
    if dups:
        from ...core.spine.console import info

        info(f"note: {dups} records of {path.name} repeat an earlier {id_field!r}; they are named ID#2, ID#3, ...")
    return rows


def fact_of(row: dict, functions: dict | None, target_field: str = "targets") -> list:
    """What a training document teaches, for answer-aware pooling: the record's ``target_field`` (a string, a
    list of strings, or ``[start, end]`` character spans); hops records: a constant function's constant (base
    or distractor: a distractor teaches its constant too, so it is pooled like a base document), a wrapper's
    base function (its partner's name). ``[]`` when unknown."""
    got = row.get(target_field)
    if got is not None:
        if isinstance(got, (str, int, float)):
            return [str(got)]
        return [tuple(t) if isinstance(t, (list, tuple)) else str(t) for t in got]
    from .ground_truth import kind_of

    info = (functions or {}).get(row.get("func"), {})
    kind = kind_of(row.get("role") or info.get("role"))
    if kind in ("base", "distractor") and row.get("constant", info.get("constant")) is not None:
        return [str(row.get("constant", info.get("constant")))]
    if kind == "wrapper" and info.get("partner"):
        return [str(info["partner"])]
    return []


def answer_positions(text: str, offsets, facts: list, n: int) -> list[int]:
    """Positions (< n - 1) whose next token covers one of ``facts`` (strings: every occurrence in ``text``;
    tuples: character spans)."""
    spans = []
    for f in facts:
        if isinstance(f, tuple):
            spans.append((int(f[0]), int(f[1])))
            continue
        start = text.find(f)
        while f and start >= 0:
            spans.append((start, start + len(f)))
            start = text.find(f, start + 1)
    pos = {i - 1 for lo, hi in spans for i in covering(offsets[:n], lo, hi) if 0 < i < n}
    return sorted(pos)


def encode_train(rows: list[dict], tokenizer, max_tokens: int | None, answer_aware: bool = False,
                 functions: dict | None = None, target_field: str = "targets") -> list[Item]:
    """Documents scored on their next-token loss at every position, or (``answer_aware``: ``--pooling span``)
    at the positions that predict the fact the document teaches (``fact_of``); a document whose fact is not
    found keeps every position (counted in a note)."""
    items, missed = [], 0
    for r in rows:
        enc = tokenizer(r["_text"], add_special_tokens=True, return_offsets_mapping=answer_aware)
        ids = list(enc["input_ids"])
        if max_tokens is not None:
            ids = ids[:max_tokens]
        if not ids:
            raise UserError(f"--train: document {r['_uid']!r} tokenizes to nothing")
        pos = list(range(len(ids) - 1))
        if answer_aware:
            found = answer_positions(r["_text"], list(enc["offset_mapping"]), fact_of(r, functions, target_field), len(ids))
            if found:
                pos = found
            else:
                missed += 1
        items.append(Item(r["_uid"], ids, pos, [ids[p + 1] for p in pos], fields=r))
    if missed:
        from ...core.spine.console import info

        info(f"note: --pooling span: {missed} of {len(rows)} training documents name no fact (hops constant / base "
             f"function, or a {target_field!r} field) found in their text; they pool every next-token position")
    return items


def split_answer(tokenizer, prompt: str, answer: str) -> tuple[list[int], int]:
    """Token ids of ``prompt + answer`` and the index of the first token that covers the answer (``len(ids)``
    when none does)."""
    ids, span = completion_tokens(tokenizer, prompt, answer)
    return ids, span[0] if span else len(ids)


def encode_query(uid: str, prompt: str, target: str, tokenizer, candidates: list[str] | None = None,
                 fields: dict | None = None) -> Item:
    """The query sequence (prompt + target minus its last token), its answer span and candidate tokens."""
    full, b = split_answer(tokenizer, prompt, target)
    if b >= len(full):
        raise UserError(f"--queries: query {uid!r} has an empty target")
    if b == 0:
        raise UserError(f"--queries: query {uid!r} has an empty prompt")
    cands: list[int] = []
    for c in candidates or []:
        ids, cb = split_answer(tokenizer, prompt, str(c))
        if cb < len(ids) and ids[cb] not in cands:
            cands.append(ids[cb])
    if cands and full[b] not in cands:
        cands.insert(0, full[b])
    n = len(full)
    return Item(uid, full[:-1], list(range(b - 1, n - 1)), full[b:], cands, fields or {})


def encode_queries(rows: list[dict], tokenizer, answer_field: str, candidates: list[str] | None) -> list[Item]:
    items = []
    for r in rows:
        target = r.get(answer_field)
        if target is None or str(target).strip() == "":
            raise UserError(f"--queries: query {r['_uid']!r} has no {answer_field!r} (the expected answer); set --answer-field")
        lead = str(target)[: len(str(target)) - len(str(target).lstrip())]  # candidates written like the answer
        cands = [lead + str(c).strip() for c in r.get("candidates", candidates) or []]
        items.append(encode_query(r["_uid"], r["_text"], str(target), tokenizer, cands, r))
    return items


def check_same_tokens(tok_old, tok_new, texts: list[str]) -> None:
    """Fail fast unless both checkpoints' tokenizers give identical ids on every input."""
    for t in texts:
        a = tok_old(t, add_special_tokens=True)["input_ids"]
        b = tok_new(t, add_special_tokens=True)["input_ids"]
        if list(a) != list(b):
            raise UserError(f"--base and --ft tokenize {t[:40]!r} differently; attribution needs identical token ids")
