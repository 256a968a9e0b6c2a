"""Which training documents should influence each query.

Hops data: a query on function f is influenced by the documents of f and of its partner (wrapper <-> base),
by role; distractor documents are never relevant. The function table comes from ground truth (the hops
organism's ``functions`` or ``--ground-truth FILE``) or is inferred from the training records' ``func``,
``role`` and ``constant`` fields (a wrapper's partner is the base function with the same constant).
Generic data: a query may list its relevant training ids in a ``relevant`` field (this takes precedence).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...core.errors import UserError
from .metrics import CATEGORY_CODE

BASE_ROLES = {"constant", "base"}
WRAPPER_ROLES = {"wrapper", "identity"}


def kind_of(role) -> str:
    role = str(role or "").lower()
    if role in BASE_ROLES:
        return "base"
    if role in WRAPPER_ROLES:
        return "wrapper"
    if role == "distractor":
        return "distractor"
    return "other"


@dataclass
class Truth:
    relevant: np.ndarray  # [Q, N] bool
    category: np.ndarray  # [Q, N] int: 0 other, 1 own, 2 partner, 3 distractor
    groups: list[str]  # per query: its function (or its own id)
    kinds: list[str]  # per query: base | wrapper | other

    def take(self, rows) -> Truth:
        rows = np.asarray(rows, dtype=int)
        return Truth(self.relevant[rows], self.category[rows], [self.groups[i] for i in rows],
                     [self.kinds[i] for i in rows])

    @property
    def hops(self) -> bool:
        """Whether the hops columns (base / wrapper queries, partner documents) apply."""
        return any(k in ("base", "wrapper") for k in self.kinds)


def infer_functions(train: list[dict]) -> dict[str, dict]:
    """``{func: {role, constant, partner}}`` from training records carrying func / role / constant."""
    funcs: dict[str, dict] = {}
    for r in train:
        f = r.get("func")
        if f is not None and f not in funcs:
            funcs[f] = {"role": kind_of(r.get("role")), "constant": r.get("constant"), "partner": r.get("partner")}
    by_constant: dict = {}
    for f, info in funcs.items():
        if info["role"] == "base":
            by_constant.setdefault(info["constant"], []).append(f)
    for f, info in funcs.items():
        if info["role"] == "wrapper" and not info["partner"]:
            bases = by_constant.get(info["constant"], [])
            if len(bases) == 1:
                info["partner"] = bases[0]
                funcs[bases[0]]["partner"] = f
    return funcs


def normalise_functions(functions: dict) -> dict[str, dict]:
    """Ground-truth tables (organism / file) with roles mapped to base / wrapper / distractor."""
    out = {}
    for f, info in functions.items():
        out[f] = dict(info, role=kind_of(info.get("role")))
    for f, info in out.items():  # partner links are symmetric
        p = info.get("partner")
        if p in out and not out[p].get("partner"):
            out[p]["partner"] = f
    return out


def build_truth(
    queries: list[dict], train: list[dict], train_ids: list[str], functions: dict | None,
) -> Truth:
    """Relevance and category matrices for ``queries`` x ``train`` (records as dicts, ids in training order)."""
    functions = normalise_functions(functions) if functions else infer_functions(train)
    doc_func: list = [r.get("func") for r in train]
    for f, info in functions.items():  # doc_uids in the ground truth win over record fields
        uids = set(info.get("doc_uids") or [])
        if uids:
            for i, uid in enumerate(train_ids):
                if uid in uids:
                    doc_func[i] = f
    doc_kind = np.array([
        "distractor" if kind_of(r.get("role")) == "distractor" or functions.get(doc_func[i], {}).get("role") == "distractor"
        else "doc" for i, r in enumerate(train)
    ])
    doc_func_arr = np.array([str(f) if f is not None else "\0none" for f in doc_func])
    id_pos = {uid: i for i, uid in enumerate(train_ids)}
    Q, N = len(queries), len(train)
    relevant = np.zeros((Q, N), dtype=bool)
    category = np.zeros((Q, N), dtype=np.int64)
    groups, kinds = [], []
    for q, rec in enumerate(queries):
        func = rec.get("func")
        info = functions.get(func, {}) if func is not None else {}
        kinds.append(kind_of(rec.get("role") or info.get("role")))
        groups.append(str(func) if func is not None else str(rec.get("uid", q)))
        distractor = doc_kind == "distractor"
        category[q, distractor] = CATEGORY_CODE["distractor"]
        if func is not None:
            own = (doc_func_arr == str(func)) & ~distractor
            category[q, own] = CATEGORY_CODE["own"]
            relevant[q] = own
            partner = info.get("partner")
            if partner:
                mate = (doc_func_arr == str(partner)) & ~distractor
                category[q, mate] = CATEGORY_CODE["partner"]
                relevant[q] |= mate
        if rec.get("relevant") is not None:
            ids = rec["relevant"]
            missing = [i for i in ids if str(i) not in id_pos]
            if missing:
                raise UserError(f"--queries: query {rec.get('uid', q)} lists relevant id {missing[0]!r} absent from --train")
            listed = np.zeros(N, dtype=bool)
            listed[[id_pos[str(i)] for i in ids]] = True
            relevant[q] = listed
            # a listed document keeps its hops category (own / partner) when the query's function gives one;
            # otherwise it is "own"; unlisted documents are "other" (distractors stay distractors)
            hops_cat = np.isin(category[q], (CATEGORY_CODE["own"], CATEGORY_CODE["partner"]))
            category[q] = np.where(listed, np.where(hops_cat, category[q], CATEGORY_CODE["own"]),
                                   np.where(category[q] == CATEGORY_CODE["distractor"], CATEGORY_CODE["distractor"], 0))
    return Truth(relevant, category, groups, kinds)
