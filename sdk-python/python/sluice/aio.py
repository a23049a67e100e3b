"""The asyncio API: :class:`Producer`, :class:`Consumer` and :class:`Admin` with the same
shape as the blocking classes of :mod:`sluice`, their methods awaitable::

    import sluice.aio

    async def main():
        async with sluice.aio.Producer("http://127.0.0.1:9400") as producer:
            metadata = await producer.send("orders", b"hello", key="user-1")

        async with sluice.aio.Consumer("http://127.0.0.1:9400", "orders",
                                       auto_offset_reset="earliest") as consumer:
            async for record in consumer:
                print(record.value)

They connect on first use (or ``await x.start()``, or ``async with``). Their futures run on the
package's Tokio runtime and resolve on the event loop that awaited them; cancelling an awaiting
task cancels the Rust future too.
"""

from ._sluice import AsyncAdmin as Admin
from ._sluice import AsyncConsumer as Consumer
from ._sluice import AsyncProducer as Producer
from ._sluice import Record, RecordMetadata

__all__ = ["Admin", "Consumer", "Producer", "Record", "RecordMetadata"]
