"""seedvault: an archival mirror daemon for AI models.

The package freezes model weights and observed API behaviour into a content-addressed vault
(see ``docs/storage-format.md``), serves them back and alerts people when models go away.
"""

__version__ = "0.1.0"
