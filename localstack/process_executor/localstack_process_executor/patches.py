"""Fixes to LocalStack 4.13.1 that the local stack depends on, applied when the plugin loads.

LocalStack's SQS event source mapping poller parses every message body as JSON for event
filtering and serialises it again before invoking the function
(``services/lambda_/event_source_mapping/pollers/sqs_poller.py``, ``SqsPoller.handle_messages``):
``{"a":1}`` arrives as ``{"a": 1}``, raw UTF-8 as ``\\u`` escapes, a JSON string without its quotes.
Real SQS hands the function the body exactly as stored, and byte-identical delivery is a promise of
this project, so the original body is put back after filtering.
"""

from __future__ import annotations

import threading

_applied = False
_lock = threading.Lock()


def keep_sqs_bodies_byte_identical() -> None:
    """Idempotent: patch ``SqsPoller`` to hand functions the message bodies as stored."""
    global _applied
    with _lock:
        if _applied:
            return
        from localstack.services.lambda_.event_source_mapping.pollers.sqs_poller import SqsPoller

        handle_messages = SqsPoller.handle_messages
        add_source_metadata = SqsPoller.add_source_metadata
        raw = threading.local()

        def handle_messages_keeping_bodies(self, messages):
            raw.bodies = {m["MessageId"]: m["Body"] for m in messages if "Body" in m}
            try:
                return handle_messages(self, messages)
            finally:
                raw.bodies = {}

        def add_source_metadata_with_raw_bodies(self, events, *args, **kwargs):
            bodies = getattr(raw, "bodies", {})
            for event in events:
                if event.get("messageId") in bodies:
                    event["body"] = bodies[event["messageId"]]
            return add_source_metadata(self, events, *args, **kwargs)

        SqsPoller.handle_messages = handle_messages_keeping_bodies
        SqsPoller.add_source_metadata = add_source_metadata_with_raw_bodies
        _applied = True
