"""Sluice: the Python client of the Sluice event streaming broker.

A thin layer over the Rust client (``sluice-client``): routing, batching, retries, flow
control and consumer-group membership all run in Rust, on background threads, with the GIL
released while waiting on the network.

Blocking API::

    import sluice

    with sluice.Admin("http://127.0.0.1:9400") as admin:
        admin.create_topic("orders", partitions=3)

    with sluice.Producer("http://127.0.0.1:9400", acks="all") as producer:
        future = producer.send("orders", b"hello", key="user-1")
        print(future.result())          # RecordMetadata(topic='orders', partition=.., offset=..)

    with sluice.Consumer("http://127.0.0.1:9400", "orders", group="billing",
                         auto_offset_reset="earliest") as consumer:
        for record in consumer:         # Ctrl-C interrupts the wait
            print(record.key, record.value)

The same classes for asyncio live in :mod:`sluice.aio` (``async for record in consumer``,
``await producer.send(...)``). Errors are :class:`sluice.SluiceError` subclasses carrying the
broker's error code (:mod:`sluice.errors`).
"""

from . import errors
from ._sluice import (
    Admin,
    Consumer,
    Producer,
    Record,
    RecordMetadata,
    SendFuture,
    __version__,
)
from .errors import (
    BrokerError,
    ClosedError,
    ConnectionError,
    InvalidInputError,
    ProtocolError,
    SluiceError,
    TimeoutError,
)

__all__ = [
    "Admin",
    "Consumer",
    "Producer",
    "Record",
    "RecordMetadata",
    "SendFuture",
    "SluiceError",
    "BrokerError",
    "ConnectionError",
    "TimeoutError",
    "ClosedError",
    "InvalidInputError",
    "ProtocolError",
    "errors",
    "aio",
    "__version__",
]

from . import aio  # noqa: E402  (imports the classes above)
