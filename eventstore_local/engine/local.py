"""`LocalEngine`: the sample engine with its two destinations (CRM, email), started and stopped together,
as `eventstore host` runs it beside the functions."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from eventstore_local.engine.engine import SampleEngine
from eventstore_local.engine.messages import ENGINE_QUEUE
from eventstore_local.standins.destinations import (
    DEFAULT_CRM_PORT,
    DEFAULT_EMAIL_PORT,
    Destination,
    crm_destination,
    email_destination,
)


class LocalEngine:
    """`api_url`: the store's API root; `connection_string`: the storage account of `queue`. Ports 0 pick free
    ones; the email destination's `/control` is how `eventstore walk` makes it fail."""

    def __init__(
        self,
        api_url: str,
        connection_string: str,
        *,
        crm_port: int = DEFAULT_CRM_PORT,
        email_port: int = DEFAULT_EMAIL_PORT,
        queue: str = ENGINE_QUEUE,
        **engine_options: Any,
    ) -> None:
        self.crm: Destination = crm_destination(crm_port)
        self.email: Destination = email_destination(email_port)
        self.api_url = api_url
        self.connection_string = connection_string
        self.queue = queue
        self.engine_options = engine_options
        self.engine: SampleEngine | None = None

    def start(self) -> Self:
        if self.engine is not None:
            return self
        try:
            self.crm.start()
            self.email.start()
            self.engine = SampleEngine(
                self.api_url,
                self.connection_string,
                crm_url=self.crm.url,
                email_url=self.email.url,
                queue=self.queue,
                **self.engine_options,
            ).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()
            self.engine = None
        self.email.stop()
        self.crm.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def banner(self) -> str:
        return (
            f"sample engine: queue {self.queue} -> workflow deal.won (create-crm-record, send-email); destinations "
            f"CRM {self.crm.url}, email {self.email.url} (make it fail: POST {self.email.url}/control "
            '{"failNext": 5})'
        )
