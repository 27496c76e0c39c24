"""Fixes to LocalStack 4.13.1 that the local stack depends on, applied when the plugin loads.
Each one makes LocalStack behave as AWS does where the difference would break a test of ours.

LocalStack's SQS event source mapping poller parses every message body as JSON for event
filtering and serialises it again before invoking the function
(``services/lambda_/event_source_mapping/pollers/sqs_poller.py``, ``SqsPoller.handle_messages``):
``{"a":1}`` arrives as ``{"a": 1}``, raw UTF-8 as ``\\u`` escapes, a JSON string without its quotes.
Real SQS hands the function the body exactly as stored, and byte-identical delivery is a promise of
this project, so the original body is put back after filtering.

LocalStack's API Gateway rebuilds a POST body from its parsed form
(``rolo.request.restore_payload``) and fails with an ``IndexError`` — a 500 that never reaches the
function — when a ``multipart/form-data`` request has no ``boundary`` parameter. API Gateway passes
such a body on, and the store answers 415, so the body is passed on unparsed.
"""

from __future__ import annotations

import functools
import threading

_applied: set[str] = set()
_lock = threading.Lock()


def _once(patch):
    """Apply ``patch`` at most once per process, however often the plugin loads."""

    @functools.wraps(patch)
    def apply() -> None:
        with _lock:
            if patch.__name__ not in _applied:
                patch()
                _applied.add(patch.__name__)

    return apply


@_once
def keep_sqs_bodies_byte_identical() -> None:
    """Patch ``SqsPoller`` to hand functions the message bodies as stored."""
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


@_once
def pass_multipart_bodies_without_a_boundary() -> None:
    """Patch API Gateway's request parsing to pass on multipart bodies it cannot parse."""
    from localstack.services.apigateway.next_gen.execute_api.handlers import parse

    restore_payload = parse.restore_payload

    def restore_payload_or_pass_on(request):
        if request.mimetype == "multipart/form-data" and "boundary" not in request.mimetype_params:
            return request.get_data()
        return restore_payload(request)

    parse.restore_payload = restore_payload_or_pass_on
