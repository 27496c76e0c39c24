"""The forwarder as most teams would write it in Python: Powertools' batch utility with the
documented default, BatchProcessor (one record after the other), over one requests session.

Settings as the Rust forwarder reads them: BACKEND_URL, REQUEST_TIMEOUT_MS.
"""

import os

import requests
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from headers import headers

BACKEND_URL = os.environ["BACKEND_URL"]
TIMEOUT_SECONDS = int(os.environ.get("REQUEST_TIMEOUT_MS", "10000")) / 1000

# A batch whose every record failed is reported item by item, as the Rust forwarder does, instead
# of failing the invocation (the default) and retrying the whole batch.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
# Reused across records and invocations: keep-alive connections, as the Rust forwarder's pool.
session = requests.Session()


def record_handler(record: SQSRecord) -> None:
    response = session.post(
        BACKEND_URL,
        data=record.body.encode(),
        headers=headers(record),
        timeout=TIMEOUT_SECONDS,
        allow_redirects=False,
    )
    if not 200 <= response.status_code < 300:
        # Raising marks the record as failed (batchItemFailures).
        raise RuntimeError(f"backend answered {response.status_code}")


def handler(event, context):
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
