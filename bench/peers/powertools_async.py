"""The forwarder in Python with Powertools' AsyncBatchProcessor (records concurrently) and
aiohttp, at most MAX_IN_FLIGHT deliveries at once, as the Rust forwarder.

Settings as the Rust forwarder reads them: BACKEND_URL, REQUEST_TIMEOUT_MS, MAX_IN_FLIGHT.
"""

import asyncio
import os

import aiohttp
from aws_lambda_powertools.utilities.batch import (
    AsyncBatchProcessor,
    EventType,
    async_process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from headers import headers

BACKEND_URL = os.environ["BACKEND_URL"]
TIMEOUT_SECONDS = int(os.environ.get("REQUEST_TIMEOUT_MS", "10000")) / 1000
MAX_IN_FLIGHT = int(os.environ.get("MAX_IN_FLIGHT", "10"))

processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
# AsyncBatchProcessor starts every record at once; this caps the deliveries in flight. The loop
# it binds to persists across invocations (Powertools reuses it under LAMBDA_TASK_ROOT).
in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
# Created inside the running loop on first use, then reused: keep-alive connections.
session: aiohttp.ClientSession | None = None


def client() -> aiohttp.ClientSession:
    global session
    if session is None:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
        )
    return session


async def record_handler(record: SQSRecord) -> None:
    async with in_flight:
        async with client().post(
            BACKEND_URL,
            data=record.body.encode(),
            headers=headers(record),
            allow_redirects=False,
        ) as response:
            await response.read()
            if not 200 <= response.status < 300:
                # Raising marks the record as failed (batchItemFailures).
                raise RuntimeError(f"backend answered {response.status}")


def handler(event, context):
    return async_process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
