"""RabbitMQ (aio-pika): export jobs out, job events in.

* Export jobs go to the durable queue EXPORT_QUEUE (declared with no extra
  arguments, exactly like the worker declares it) through the default exchange,
  on a channel with publisher confirms and mandatory publishing: a publish
  either is confirmed by the broker or raises `BrokerUnavailable`.
* Job events travel on the topic exchange EVENTS_EXCHANGE with routing keys
  ``export.<status>``. Each API process binds its own exclusive, auto-delete
  queue to ``export.*`` and fans the events out in-process (`EventHub`) to the
  SSE streams of its clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)

log = logging.getLogger("app.broker")

EVENT_FIELDS = (
    "job_id", "owner_id", "status", "row_count", "file_name", "file_size", "error", "updated_at",
)  # fmt: skip


class BrokerUnavailable(Exception):
    """RabbitMQ is off, unreachable, or did not confirm the message."""


def to_event_id(updated_at: datetime) -> int:
    """SSE event ids are the job's updated_at in epoch microseconds."""
    return int(updated_at.timestamp() * 1_000_000)


def from_event_id(event_id: int) -> datetime:
    return datetime.fromtimestamp(event_id / 1_000_000, UTC)


@dataclass(frozen=True, slots=True)
class JobEvent:
    id: int
    owner_id: str
    job_id: str
    body: Mapping[str, Any]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> JobEvent:
        """Validate an event published by the worker (or us); raise ValueError if unusable."""
        try:
            job_id = str(uuid.UUID(str(body["job_id"])))
            owner_id = str(uuid.UUID(str(body["owner_id"])))
            status = body["status"]
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"not a job event: {exc}") from None
        if not isinstance(status, str):
            raise ValueError("status must be a string")
        try:
            updated = datetime.fromisoformat(str(body["updated_at"]))
            if updated.tzinfo is None:
                updated = updated.replace(tzinfo=UTC)
            event_id = to_event_id(updated)
        except (KeyError, ValueError, TypeError):
            event_id = int(time.time() * 1_000_000)
        clean = {field: body.get(field) for field in EVENT_FIELDS}
        clean.update(job_id=job_id, owner_id=owner_id)
        return cls(event_id, owner_id, job_id, clean)

    def sse(self) -> bytes:
        return b"id: %d\ndata: %s\n\n" % (self.id, orjson.dumps(self.body))


class Subscription:
    """One SSE stream's inbox; overflows (a stuck client) end the stream."""

    def __init__(self, owner_id: str | None, size: int = 256) -> None:
        self.owner_id = owner_id  # None: every job (admins)
        self.queue: asyncio.Queue[JobEvent | None] = asyncio.Queue(size)
        self.overflowed = False

    def offer(self, event: JobEvent | None) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True


class EventHub:
    """In-process fan-out of job events to the SSE subscribers of this process."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()

    def subscribe(self, owner_id: str | None) -> Subscription:
        subscription = Subscription(owner_id)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def publish(self, event: JobEvent) -> None:
        for subscription in self._subscriptions:
            if subscription.owner_id is None or subscription.owner_id == event.owner_id:
                subscription.offer(event)

    def close(self) -> None:
        """End every stream (shutdown)."""
        for subscription in self._subscriptions:
            subscription.offer(None)

    def __len__(self) -> int:
        return len(self._subscriptions)


class Broker:
    def __init__(
        self,
        url: str | None,
        export_queue: str,
        events_exchange: str,
        hub: EventHub,
        publish_timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.export_queue = export_queue
        self.events_exchange_name = events_exchange
        self.hub = hub
        self.publish_timeout = publish_timeout
        self.connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._events: AbstractExchange | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    @property
    def enabled(self) -> bool:
        return self.url is not None

    @property
    def connected(self) -> bool:
        return (
            self.connection is not None
            and not self.connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def start(self, first_attempt_timeout: float = 10.0) -> None:
        """Connect (and set up the relay); keep retrying in the background if that fails."""
        if self.url is None:
            log.info("RabbitMQ is off: exports will be refused with 503")
            return
        try:
            await self._connect(first_attempt_timeout)
        except Exception as exc:  # noqa: BLE001
            self._failed_to_connect(exc)
            self._connect_task = asyncio.create_task(self._connect_forever())

    def _failed_to_connect(self, exc: BaseException) -> None:
        self.last_error = f"{exc.__class__.__name__}: {exc}"
        log.warning("RabbitMQ unreachable, retrying in the background: %s", self.last_error)

    async def _connect_forever(self) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                await self._connect(10.0)
                log.info("RabbitMQ connected")
                return
            except Exception as exc:  # noqa: BLE001
                self.last_error = f"{exc.__class__.__name__}: {exc}"
                delay = min(delay * 2, 30.0)

    async def _connect(self, timeout: float) -> None:
        assert self.url is not None
        connection = await aio_pika.connect_robust(
            self.url, timeout=timeout, client_properties={"connection_name": "api"}
        )
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            # Identical to the worker's declaration: durable, no arguments.
            await channel.declare_queue(self.export_queue, durable=True)
            events = await channel.declare_exchange(
                self.events_exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            relay_channel = await connection.channel(publisher_confirms=False)
            relay_exchange = await relay_channel.declare_exchange(
                self.events_exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await relay_channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(relay_exchange, routing_key="export.*")
            await queue.consume(self._on_event, no_ack=True)
        except BaseException:
            await connection.close()
            raise
        self.connection, self._channel, self._events = connection, channel, events
        self.last_error = None

    async def _on_event(self, message: AbstractIncomingMessage) -> None:
        if not self.hub:
            return  # no stream open in this process: every job's three events cost nothing
        try:
            event = JobEvent.from_body(orjson.loads(message.body))
        except (orjson.JSONDecodeError, ValueError) as exc:
            log.warning("ignoring malformed job event: %s", exc)
            return
        self.hub.publish(event)

    async def publish_export(self, job_id: str, body: Mapping[str, Any]) -> None:
        """Queue an export job; return once the broker confirmed it, else raise."""
        if self.url is None:
            raise BrokerUnavailable("the message broker is not configured (RABBITMQ_* unset)")
        if self._channel is None or not self.connected:
            raise BrokerUnavailable(f"the message broker is unreachable ({self.last_error})")
        message = aio_pika.Message(
            orjson.dumps(body),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=job_id,
            timestamp=datetime.now(UTC),
        )
        try:
            await self._channel.default_exchange.publish(
                message,
                routing_key=self.export_queue,
                mandatory=True,
                timeout=self.publish_timeout,
            )
        except aio_pika.exceptions.PublishError as exc:
            reply = getattr(exc.message.delivery, "reply_text", "unroutable")
            raise BrokerUnavailable(
                f"the message broker returned the message ({reply}: "
                f"no queue {self.export_queue!r} to route it to)"
            ) from exc
        except aio_pika.exceptions.DeliveryError as exc:
            raise BrokerUnavailable("the message broker refused the message (nack)") from exc
        except TimeoutError as exc:
            raise BrokerUnavailable("the message broker did not confirm the message") from exc
        except Exception as exc:
            raise BrokerUnavailable(f"publishing failed: {exc.__class__.__name__}: {exc}") from exc

    async def queue_export(
        self, job_id: str, body: Mapping[str, Any], event: Mapping[str, Any]
    ) -> None:
        """Announce the job queued and queue it, both in flight at once; raise unless the
        broker confirmed the job (the event stays best effort).

        One wait for two confirms: the two publishes go out back to back on the one
        confirm channel, while concurrent requests' publishes are in flight beside them,
        and the broker confirms what it has stored, many at a time (``multiple``). The
        event is sent first: gather starts its tasks in order, both take the same path
        to the channel's lock (asyncio wakes waiters first come, first served), and a
        channel keeps its messages in order, so "queued" reaches the event queues
        before the worker can receive the job and announce "running".
        """
        announced, queued = await asyncio.gather(
            self.publish_event(event), self.publish_export(job_id, body), return_exceptions=True
        )
        for outcome in (announced, queued):
            if isinstance(outcome, BaseException):
                raise outcome

    async def publish_event(self, body: Mapping[str, Any]) -> None:
        """Best effort: announce a job status change on the events exchange."""
        if self._events is None or not self.connected:
            return
        message = aio_pika.Message(
            orjson.dumps(body),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            await self._events.publish(
                message,
                routing_key=f"export.{body['status']}",
                mandatory=False,
                timeout=self.publish_timeout,
            )
        except Exception as exc:  # noqa: BLE001
            log.warning("could not publish job event: %s: %s", exc.__class__.__name__, exc)

    async def check(self, timeout: float) -> None:
        """Raise unless the broker connection works (a channel round trip)."""
        if self.url is None:
            raise RuntimeError("rabbitmq is off")
        if self.connection is None or not self.connected:
            raise RuntimeError(self.last_error or "not connected")
        async with asyncio.timeout(timeout):
            channel = await self.connection.channel(publisher_confirms=False)
            await channel.close()

    async def close(self) -> None:
        if self._connect_task is not None:
            self._connect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connect_task
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.close()
