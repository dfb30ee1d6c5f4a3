"""Routing per destination (event globs, lowest severity, source and model globs, dead letters
and reminders), destinations from config with key-path errors, and the retry backoff."""

from __future__ import annotations

import pytest

from seedvault.config import EmailAlert, WebhookAlert
from seedvault.errors import ConfigError
from seedvault.events import Event
from seedvault.notify.base import Destination, email_destination, webhook_destination
from seedvault.notify.dispatch import backoff_s
from tests.test_alerts_support import gone, lifecycle


def doc(event: Event) -> dict[str, object]:
    return event.to_json("2031-03-03T06:00:00.000000Z")


URGENT = doc(gone())
ROUTINE = doc(lifecycle("model_added", "gpt-new", None))


def test_urgent_goes_now_and_routine_to_the_digest() -> None:
    """Severity decides: urgent at once, routine in the digest, below ``severity`` nothing."""
    everything = Destination("d", "email", "d")
    assert everything.route(URGENT) == "now"
    assert everything.route(ROUTINE) == "digest"
    urgent_only = Destination("d", "email", "d", severity="urgent")
    assert urgent_only.route(URGENT) == "now"
    assert urgent_only.route(ROUTINE) is None


def test_event_source_and_model_globs() -> None:
    """``events``, ``sources`` and ``models`` are globs; an empty filter means all."""
    assert Destination("d", "email", "d", events=("repo_*",)).route(URGENT) == "now"
    assert Destination("d", "email", "d", events=("deprecated",)).route(URGENT) is None
    assert Destination("d", "email", "d", sources=("hf/*",)).route(URGENT) == "now"
    assert Destination("d", "email", "d", sources=("page/*",)).route(URGENT) is None
    assert Destination("d", "email", "d", models=("org/*",)).route(URGENT) == "now"
    assert Destination("d", "email", "d", models=("gpt-*",)).route(URGENT) is None
    assert Destination("d", "email", "d", models=("gpt-*",)).route(ROUTINE) == "digest"


def test_a_dead_letter_goes_to_the_other_destinations_only() -> None:
    """An ``alert_dead_lettered`` event is never routed to the destination it is about."""
    event = doc(Event("alert_dead_lettered", "alerts", {"destination": "a", "alert": "x"}, "x"))
    assert Destination("a", "email", "a").route(event) is None
    assert Destination("b", "email", "b").route(event) == "now"


def test_destinations_from_config() -> None:
    """Email ids are the recipients, webhook ids never show the URL path (often a secret)."""
    email = EmailAlert(
        to=["List@Example.edu"], from_="s@x.edu", reminders=["7d", "30d"], digest_at="07:30"
    )
    dest = email_destination(email, "alerts.email[0]")
    assert dest.id == "email:list@example.edu"
    assert dest.reminders == (30 * 86400, 7 * 86400)
    assert dest.digest_at == (7, 30)
    hook = webhook_destination(
        WebhookAlert(url="https://chat.example.edu/hooks/SECRET123"), "alerts.webhook[0]"
    )
    assert hook.id.startswith("webhook:chat.example.edu#")
    assert "SECRET123" not in hook.id
    assert (hook.severity, hook.digest_at, hook.lead_labels) == (
        "routine",
        (8, 0),
        frozenset({"30d", "7d", "1d"}),
    )


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (EmailAlert(to=["a@b"], from_="c@d", digest_at="8am"), r"alerts\.email\[0\]\.digest_at"),
        (EmailAlert(to=["a@b"], from_="c@d", reminders=["soon"]), r"reminders\[0\]"),
        (EmailAlert(to=["a@b"], from_="c@d", events=["deprecatd"]), "unknown event type"),
    ],
)
def test_bad_alert_settings_name_the_key(cfg: EmailAlert, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        email_destination(cfg, "alerts.email[0]")


def test_backoff_grows_is_capped_and_jittered() -> None:
    """Exponential from the base, capped, between half and all of it; Retry-After wins."""
    assert [backoff_s(n, 30, 600, lambda: 1.0) for n in (1, 2, 3, 6, 9)] == [30, 60, 120, 600, 600]
    assert backoff_s(3, 30, 600, lambda: 0.0) == 60
    assert backoff_s(1, 30, 600, lambda: 0.0, retry_after_s=300) == 300
