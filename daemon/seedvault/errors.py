"""The one exception tree of seedvault.

Every error the package raises on purpose is a :class:`SeedvaultError`; third-party exceptions
(boto3, aiohttp, sqlite3, zstandard) are translated at the module that talks to the library.
``exit_code`` is what the CLI exits with when the error reaches it.

::

    SeedvaultError                      exit 1 unless noted
    ├── ConfigError                     exit 2: bad config file, key or value (names the key path)
    ├── UsageError                      exit 2: bad command-line arguments (unknown source, …)
    ├── StoreError                      a storage backend failed (unreachable, refused, I/O)
    │   ├── ObjectNotFound              the key does not exist
    │   └── PreconditionFailed          a compare-and-swap lost (the object changed meanwhile)
    ├── VaultError
    │   ├── VaultFormatError            exit 2: not a vault, or a format version we cannot read
    │   ├── IntegrityError              stored bytes do not decode or do not hash to their address
    │   ├── NotInVault                  a snapshot, file or ref that the vault does not hold
    │   └── LockHeld                    another process holds a vault lock (e.g. ``locks/gc``)
    ├── UnsafePathError                 a file path that could escape its directory
    ├── CatalogError                    the SQLite catalog failed
    ├── SourceError                     a capture could not read its source
    │   ├── UpstreamError               an upstream server answered with an error or garbage
    │   └── VerificationError           downloaded bytes do not match the upstream's hashes
    └── AlertDeliveryError              a notifier could not hand an alert to its server
"""

from __future__ import annotations


class SeedvaultError(Exception):
    """Base of every error seedvault raises on purpose."""

    exit_code = 1


class ConfigError(SeedvaultError):
    """A config file, key or value is wrong; the message names the key path."""

    exit_code = 2


class UsageError(SeedvaultError):
    """The command line asks for something that cannot be done as written."""

    exit_code = 2


class StoreError(SeedvaultError):
    """A storage backend failed to move bytes."""


class ObjectNotFound(StoreError):
    """The key does not exist in the store."""


class PreconditionFailed(StoreError):
    """A compare-and-swap write lost: the object is not in the expected state."""


class VaultError(SeedvaultError):
    """The vault cannot do what was asked."""


class VaultFormatError(VaultError):
    """The location is not a seedvault vault, or holds a format version this code cannot read."""

    exit_code = 2


class IntegrityError(VaultError):
    """Stored bytes are damaged: they do not decode, or do not hash to their address."""


class NotInVault(VaultError):
    """A snapshot, file, ref or other object the caller asked for is not in the vault."""


class LockHeld(VaultError):
    """Another process holds a vault lock."""


class UnsafePathError(SeedvaultError):
    """A file path is absolute, has empty/``.``/``..`` segments, backslashes or control chars."""


class CatalogError(SeedvaultError):
    """The SQLite catalog failed."""


class SourceError(SeedvaultError):
    """A capture could not read its source."""


class UpstreamError(SourceError):
    """An upstream server answered with an error or with something we cannot understand."""


class VerificationError(SourceError):
    """Downloaded bytes do not match the hashes or size the upstream published for them."""


class AlertDeliveryError(SeedvaultError):
    """A notifier could not hand an alert to its server.

    ``permanent``: the server refused it for good (SMTP 5xx, webhook 4xx other than 408/429):
    retrying cannot help, so the alert is dead-lettered at once. Otherwise it is retried with
    backoff until ``[alerts] retry_for`` has passed; ``retry_after_s`` is the server's own
    ``Retry-After`` when it gave one. Messages never hold a secret or a webhook URL.
    """

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after_s = retry_after_s
