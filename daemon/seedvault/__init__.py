"""seedvault: an archival mirror daemon for AI models.

The package freezes model weights and observed API behaviour into a content-addressed vault
(see ``docs/storage-format.md``), serves them back and alerts people when models go away.
"""

import os

# seedvault uses numpy only to split and join byte planes, never for linear algebra; the
# worker threads numpy's OpenBLAS starts at import otherwise spin for a while after it
# (measured: 0.1 CPU s per process, taken from the capture running beside them on 2 cores).
# Set before anything imports numpy; an operator's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
