"""The jaxtyping shapes the code annotates with, named once here (import them from this module, not jaxtyping).

Shapes are checked at test time (pytest runs with jaxtyping's import hook and beartype, see pyproject.toml).
Within one call a dimension name binds one size, so aliases sharing a letter must agree: ``kl(LogProbs,
LogProbs) -> RowScores`` checks that both inputs have the same rows and vocabulary and the output one value per
row. Letters: n rows (flattened positions), d hidden size, v readout vocabulary, V the model's (maybe padded)
vocabulary, b batch rows, t positions (or targets), layers/L layers; attribute uses B sequences of T tokens, C
candidate answers, Q queries, N training documents, D hidden size, P pooled candidates.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Bool, Float, Int
from torch import Tensor

# ---------------------------------------------------------------- rows of positions (core, lens, nll)
Hidden = Float[Tensor, "n d"]  # hidden states, one row per position
Logits = Float[Tensor, "n V"]  # logits over the model's full (maybe padded) vocabulary
LogProbs = Float[Tensor, "n v"]  # log-probabilities over the readout vocabulary
RowScores = Float[Tensor, " n"]  # one value per row
RowTokens = Int[Tensor, " n"]  # one token id (or sample/item index) per row
RowMask = Bool[Tensor, " n"]  # one flag per row
PositionMask = Bool[Tensor, "b t"]  # one flag per (batch row, position)
LayerTokenScores = Float[Tensor, "layers v"]  # one value per (layer, vocabulary token)
LayerRowScores = Float[Tensor, "layers n"]  # one value per (layer, row)
LayerHidden = Float[Tensor, "layers n d"]  # hidden states of selected rows at every layer
LayerSequenceHidden = Float[Tensor, "layers t d"]  # hidden states of every position of one sequence, every layer

# ---------------------------------------------------------------- tokenlens: b rows of n tokens, t targets
TokenGrid = Int[Tensor, "b n"]  # token ids, attention mask or position ids of left-padded rows
TargetIds = Int[Tensor, "b t"]  # the target tokens of each row
TargetWeights = Float[Tensor, "b t"]  # 1 where a row has a target
TargetLogits = Float[Tensor, "r t v"]  # logits at each target's read position
TargetTokens = Int[Tensor, "r t"]
TargetScores = Float[Tensor, "r t"]
Embeddings = Float[Tensor, "r n d"]  # input embeddings

# ---------------------------------------------------------------- attribute: B sequences of T tokens
PaddedTokens = Int[Tensor, "B T"]  # token ids, attention mask or targets (-100 off the loss positions)
PoolWeights = Float[Tensor, "B T"]  # pooling weights, each row sums to 1
CandidateIds = Int[Tensor, "B C"]  # candidate answer tokens, -1 = none
SequenceLogits = Float[Tensor, "B T V"]
SequenceHidden = Float[Tensor, "B T D"]
SequenceScores = Float[Tensor, " B"]  # one value per sequence
Pooled = Float[Tensor, "B D"]  # one pooled vector per sequence
TrainVectors = Float[Tensor, "L N D"]  # one vector per (layer, training document)
QueryVectors = Float[Tensor, "L Q D"]  # one vector per (layer, query)
Vectors = Float[Tensor, "... N D"]  # any stack of vector sets
PoolVectors = Float[Tensor, "P D"]
PoolGate = Bool[Tensor, "P D"]
CandidatePool = Int[Tensor, "Q P"]  # per query, the indices of the documents to patch
LayerScores = Float[Tensor, "L Q N"]  # query x document scores at every layer
Scores = Float[Tensor, "Q N"]  # query x document scores

# ---------------------------------------------------------------- attribute metrics (numpy)
ScoreMatrix = Float[np.ndarray, "Q N"]  # query x document scores
RankMatrix = Int[np.ndarray, "Q N"]  # rank of each document for each query
RelevanceMatrix = Bool[np.ndarray, "Q N"]  # relevant (query, document) pairs
CategoryMatrix = Int[np.ndarray, "Q N"]  # the category of each (query, document) pair
DocScores = Float[np.ndarray, " N"]
DocRelevance = Bool[np.ndarray, " N"]
QueryValues = Float[np.ndarray, " Q"]  # one value per query
DocTokenMatrix = Int[np.ndarray, "N T"]  # token ids of padded documents (pad = -1)
