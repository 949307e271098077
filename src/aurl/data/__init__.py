"""Data on disk: the bundled corpus, the content-addressed token cache and the `preprocess` step.

`preprocess` itself is imported from `aurl` or `aurl.data.preprocess` (not re-exported here, where
the function would shadow its own module). This package stays free of torch at import time;
modules that need torch are imported from their own module, never re-exported here.
"""

from aurl.data.cache import CacheEntry, Manifest, RejectedFile, TokenCache

__all__ = ["CacheEntry", "Manifest", "RejectedFile", "TokenCache"]
