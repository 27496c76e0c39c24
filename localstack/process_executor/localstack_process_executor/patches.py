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

LocalStack's CBOR serializer (``aws/protocol/serializer.py``, ``BaseCBORResponseSerializer``) fails
on a key the response shape does not define, where its other serializers skip it. CloudWatch
keeps an alarm's tags inside the alarm, so ``DescribeAlarms`` in the Smithy RPC v2 CBOR protocol
(the one current AWS SDKs use, ``sfctl status`` among them) answers 500 for any tagged alarm. The
serializer now skips undefined keys as the others do.

LocalStack's event source mappings (``services/lambda_/event_source_mapping/esm_worker.py``,
``EsmWorker``; ``LambdaProvider.update_event_source_mapping_v2``) replace their worker on every
``UpdateEventSourceMapping``, and the worker replaced writes the mapping's ``State`` into the store
when its poller ends, after the batch it has in flight. Disabled during an invocation and enabled
again before it returns (a circuit breaker that the function itself opens), the mapping polls but
``ListEventSourceMappings`` says ``Disabled`` until something calls ``GetEventSourceMapping``. And a
disabled mapping has no poller, while only the poller removes a deleted mapping from the store: it
stays listed (``State=Deleting``) for good, and a new mapping between the same queue and function is
refused (``ResourceConflictException``), e.g. on the next ``terraform apply`` after a destroy.
A replaced worker now leaves the store alone, and a disabled mapping is removed when deleted.

With a batching window (``MaximumBatchingWindowInSeconds`` > 0) LocalStack's SQS poller waits in a
long-poll ``ReceiveMessage`` of up to that many seconds, and a mapping disabled (or deleted) during
that wait still invokes the function with whatever the wait returns: messages sent after the
mapping was disabled. Such messages are now made visible again at once (``ChangeMessageVisibility``
0; the receive still counts towards a redrive policy's maxReceiveCount) instead of being handed to
the function; a batch already being handed over is finished.
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


@_once
def skip_undefined_members_in_cbor_responses() -> None:
    """Patch the CBOR serializer to leave out keys its shape does not define."""
    from localstack.aws.protocol.serializer import BaseCBORResponseSerializer

    serialize_structure = BaseCBORResponseSerializer._serialize_type_structure

    def serialize_defined_members(self, serialized, value, shape, name=None, shape_members=None):
        members = shape_members or (shape.members if shape is not None else None)
        if members is not None and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k in members}
        return serialize_structure(self, serialized, value, shape, name, shape_members)

    BaseCBORResponseSerializer._serialize_type_structure = serialize_defined_members


@_once
def keep_event_source_mapping_state_current() -> None:
    """Patch ``EsmWorker``: a replaced worker stops writing the mapping's state; deleting a disabled
    mapping (no poller to finish the deletion) removes it at once."""
    from localstack.services.lambda_.event_source_mapping.esm_worker import EsmWorker

    stop = EsmWorker.stop
    delete = EsmWorker.delete
    update_esm_state_in_store = EsmWorker.update_esm_state_in_store
    delete_esm_in_store = EsmWorker.delete_esm_in_store

    # LocalStack calls stop() only on the worker UpdateEventSourceMapping replaces (the new worker is
    # already registered); the provider and the new worker's create() write the state from then on.
    def stop_for_good(self):
        with self._state_lock:
            self._replaced = True
            stop(self)

    # under the worker's lock, so that a poller starting up cannot write after stop() returned
    def update_state_unless_replaced(self, new_state):
        with self._state_lock:
            if not getattr(self, "_replaced", False):
                update_esm_state_in_store(self, new_state)

    def delete_unless_replaced(self):
        with self._state_lock:
            if not getattr(self, "_replaced", False):
                delete_esm_in_store(self)

    def delete_even_when_disabled(self):
        delete(self)
        if self._poller_thread is None:  # created disabled: no poller to remove it when it ends
            delete_unless_replaced(self)

    EsmWorker.stop = stop_for_good
    EsmWorker.delete = delete_even_when_disabled
    EsmWorker.update_esm_state_in_store = update_state_unless_replaced
    EsmWorker.delete_esm_in_store = delete_unless_replaced


@_once
def stop_sqs_polling_when_disabled() -> None:
    """Patch ``EsmWorker`` and ``SqsPoller``: what a poller receives after its mapping was disabled
    or deleted goes back to the queue instead of to the function."""
    from localstack.services.lambda_.event_source_mapping.esm_worker import EsmWorker
    from localstack.services.lambda_.event_source_mapping.pollers.sqs_poller import SqsPoller

    def stopping_the_poller(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            self.poller._mapping_stopped = True
            return method(self, *args, **kwargs)

        return wrapper

    handle_messages = SqsPoller.handle_messages

    def handle_messages_unless_stopped(self, messages):
        if not getattr(self, "_mapping_stopped", False):
            return handle_messages(self, messages)
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(messages)
        ]
        for start in range(0, len(entries), 10):
            self.source_client.change_message_visibility_batch(
                QueueUrl=self.queue_url, Entries=entries[start : start + 10]
            )

    EsmWorker.stop = stopping_the_poller(EsmWorker.stop)
    EsmWorker.delete = stopping_the_poller(EsmWorker.delete)
    SqsPoller.handle_messages = handle_messages_unless_stopped
