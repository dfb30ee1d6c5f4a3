"""Alerts: recorded events become mail to lists, signed webhooks and feeds — never lost.

* :mod:`.base` — destinations and routing (event globs, severity, source/model filters),
  the :class:`~seedvault.notify.base.Notifier` protocol and its error;
* :mod:`.dispatch` — the :class:`~seedvault.notify.dispatch.Dispatcher`: the outbox
  (enqueue before sending, mark after acceptance), digests, retries, dead letters;
* :mod:`.reminders` — ``shutdown_reminder`` events before known shutdown dates;
* :mod:`.render` — what an alert says (every fact, escaped), shared by every channel;
* :mod:`.email`, :mod:`.webhook` — the two notifiers; :mod:`.feed` — Atom and JSON Feed.

The delivery guarantee and what each event means for a reader: ``docs/alerts.md``.
"""

from seedvault.notify.dispatch import Dispatcher, PassResult, alert_metrics
from seedvault.notify.feed import (
    ATOM_CONTENT_TYPE,
    FEED_ENTRIES,
    JSON_FEED_CONTENT_TYPE,
    atom_feed,
    json_feed,
)

__all__ = [
    "ATOM_CONTENT_TYPE",
    "FEED_ENTRIES",
    "JSON_FEED_CONTENT_TYPE",
    "Dispatcher",
    "PassResult",
    "alert_metrics",
    "atom_feed",
    "json_feed",
]
