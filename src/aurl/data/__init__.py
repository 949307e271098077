"""Data on disk and in batches: the bundled corpus, the token cache, `preprocess`, and the training data.

`preprocess` itself is imported from `aurl` or `aurl.data.preprocess` (not re-exported here, where
the function would shadow its own module). This package stays free of torch at import time:
`Batches` imports torch only when it builds tensors or a DataLoader.
"""

from aurl.data.batches import Batches
from aurl.data.cache import CacheEntry, Manifest, RejectedFile, TokenCache
from aurl.data.curriculum import curriculum_stages, seq_len_at
from aurl.data.dataset import TokenDataset, TrainingData, load_training_data

__all__ = [
    "Batches",
    "CacheEntry",
    "Manifest",
    "RejectedFile",
    "TokenCache",
    "TokenDataset",
    "TrainingData",
    "curriculum_stages",
    "load_training_data",
    "seq_len_at",
]
