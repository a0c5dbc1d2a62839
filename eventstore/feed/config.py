"""The sinks a deployment's settings name (Event Grid topic, webhooks), each switchable on its own."""

from __future__ import annotations

import logging

from azure.core.credentials import AzureKeyCredential, TokenCredential

from eventstore.errors import InvalidInput
from eventstore.feed.sinks import EventGridSdkSink, EventGridSink, Sink, WebhookSink
from eventstore.settings import Settings

log = logging.getLogger(__name__)


def event_grid_credential(settings: Settings) -> AzureKeyCredential | TokenCredential:
    if settings.eventgrid_auth == "entra":
        # Imported here: azure-identity is heavy, and local runs use a key.
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()
    key = settings.eventgrid_key.get_secret_value()
    if not key:
        raise InvalidInput("EVENTSTORE_EVENTGRID_KEY is empty (or set EVENTSTORE_EVENTGRID_AUTH=entra)")
    return AzureKeyCredential(key)


def sinks_from_settings(settings: Settings) -> list[Sink]:
    """Every enabled sink; none when the feed is switched off for the deployment. A sink that cannot be
    built is logged as an error and left out, so that it does not take the other sinks down with it."""
    if not settings.feed_enabled:
        return []
    sinks: list[Sink] = []
    timeout = settings.feed_request_timeout
    if settings.eventgrid_endpoint and settings.eventgrid_enabled:
        try:
            kind = EventGridSdkSink if settings.eventgrid_client == "sdk" else EventGridSink
            sinks.append(kind(settings.eventgrid_endpoint, event_grid_credential(settings), timeout=timeout))
        except Exception as exc:
            log.error("feed: the Event Grid sink is not configured correctly and publishes nothing: %s", exc)
    for name, hook in sorted(settings.webhooks.items()):
        if hook.enabled:
            try:
                sinks.append(
                    WebhookSink(
                        name,
                        hook.url,
                        hook.secret.get_secret_value(),
                        origin=settings.feed_origin,
                        handshake=hook.handshake,
                        timeout=timeout,
                    )
                )
            except Exception as exc:
                log.error("feed: webhook %s is not configured correctly and publishes nothing: %s", name, exc)
    return sinks
