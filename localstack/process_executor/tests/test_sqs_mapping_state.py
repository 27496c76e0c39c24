"""SQS event source mappings switched off and on (UpdateEventSourceMapping Enabled=false/true), as a
circuit breaker does, and the visibility and delay of the messages they poll.

The test function (functions/bootstrap.py) appends a line to RECORD_FILE when a batch starts and
when it ends, with the wall-clock time: that is how these tests see when, and with what, LocalStack
invoked it. Timings measured here are printed (pytest -s shows them).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import wait_until


@dataclass
class Mapping:
    function: str
    queue_url: str
    queue_arn: str
    uuid: str
    records: Path


@pytest.fixture
def sqs_mapping(aws, lambda_client, make_function, tmp_path):
    """sqs_mapping(batch_size=..., visibility_timeout=..., batching_window=...) -> Mapping: a function recording its
    invocations, a queue, and an enabled mapping with ReportBatchItemFailures between them."""
    sqs = aws("sqs")
    created = []

    def make(batch_size=10, visibility_timeout=30, batching_window=0):
        records = tmp_path / f"records-{len(created)}.jsonl"
        name = make_function(timeout=30, env={"RECORD_FILE": str(records)})
        queue_url = sqs.create_queue(
            QueueName=f"pe-test-{uuid.uuid4().hex[:10]}",
            Attributes={"VisibilityTimeout": str(visibility_timeout)},
        )["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        esm = lambda_client.create_event_source_mapping(
            EventSourceArn=queue_arn,
            FunctionName=name,
            BatchSize=batch_size,
            MaximumBatchingWindowInSeconds=batching_window,
            FunctionResponseTypes=["ReportBatchItemFailures"],
        )
        mapping = Mapping(name, queue_url, queue_arn, esm["UUID"], records)
        created.append(mapping)
        wait_until(
            lambda: states(lambda_client, mapping) == ("Enabled", "Enabled"), 30, message="mapping enabled"
        )
        return mapping

    yield make
    for mapping in created:
        try:
            lambda_client.delete_event_source_mapping(UUID=mapping.uuid)
        except Exception:
            pass
        try:
            sqs.delete_queue(QueueUrl=mapping.queue_url)
        except Exception:
            pass


def listed_state(lambda_client, mapping) -> str | None:
    """State from ListEventSourceMappings(FunctionName). On LocalStack GetEventSourceMapping also
    writes the state it reads into what List reads: checks of List alone call this alone."""
    listed = lambda_client.list_event_source_mappings(FunctionName=mapping.function)["EventSourceMappings"]
    return next((e["State"] for e in listed if e["UUID"] == mapping.uuid), None)


def states(lambda_client, mapping) -> tuple[str, str]:
    """(State from GetEventSourceMapping, State from ListEventSourceMappings(FunctionName))."""
    listed = listed_state(lambda_client, mapping)
    return lambda_client.get_event_source_mapping(UUID=mapping.uuid)["State"], listed


def watch_states(lambda_client, mapping, target: str, since: float, timeout: float = 30):
    """Poll both states until both read target; returns [(seconds since `since`, (get, list))] of
    every change seen, the last one being (…, (target, target))."""
    seen = []

    def settled():
        now = states(lambda_client, mapping)
        if not seen or seen[-1][1] != now:
            seen.append((round(time.monotonic() - since, 2), now))
        return now == (target, target)

    wait_until(settled, timeout, interval=0.05, message=f"mapping {mapping.uuid} to read {target}")
    return seen


def records(mapping, event="start") -> list[dict]:
    """The function's records of that kind, in order."""
    if not mapping.records.exists():
        return []
    lines = mapping.records.read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def invocations_of(mapping, message_id) -> list[dict]:
    return [r for r in records(mapping) if message_id in r["ids"]]


def counts(aws, mapping) -> tuple[int, int]:
    """(ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible)."""
    attributes = aws("sqs").get_queue_attributes(
        QueueUrl=mapping.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def send(aws, mapping, body, **kwargs) -> str:
    return aws("sqs").send_message(QueueUrl=mapping.queue_url, MessageBody=body, **kwargs)["MessageId"]


def stays(predicate, seconds: float, message: str, interval: float = 0.25):
    """Assert predicate() holds at every check for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), message
        time.sleep(interval)
    assert predicate(), message


def test_disabled_mapping_stops_polling_and_enabling_resumes(aws, lambda_client, sqs_mapping):
    mapping = sqs_mapping()
    first = send(aws, mapping, "before")
    wait_until(lambda: invocations_of(mapping, first), 30, message="the first message to be delivered")
    wait_until(lambda: counts(aws, mapping) == (0, 0), 30, message="the queue to drain")

    # ListEventSourceMappings(FunctionName) returns the mapping with its UUID, queue and state
    listed = lambda_client.list_event_source_mappings(FunctionName=mapping.function)["EventSourceMappings"]
    assert [(e["UUID"], e["EventSourceArn"], e["State"]) for e in listed] == [
        (mapping.uuid, mapping.queue_arn, "Enabled")
    ]

    started = time.monotonic()
    response = lambda_client.update_event_source_mapping(UUID=mapping.uuid, Enabled=False)
    assert response["State"] == "Disabling"
    disabling = watch_states(lambda_client, mapping, "Disabled", started)
    print(f"\nafter Enabled=false: {disabling}")

    delivered = len(records(mapping))
    held = [send(aws, mapping, f"held {i}") for i in range(3)]
    # nothing is received while disabled: the messages wait in the queue, visible, the function idle
    stays(
        lambda: counts(aws, mapping) == (3, 0) and len(records(mapping)) == delivered,
        15,
        "a disabled mapping received messages",
    )
    assert states(lambda_client, mapping) == ("Disabled", "Disabled")

    started, enabled_at = time.monotonic(), time.time()
    response = lambda_client.update_event_source_mapping(UUID=mapping.uuid, Enabled=True)
    assert response["State"] == "Enabling"
    enabling = watch_states(lambda_client, mapping, "Enabled", started)
    wait_until(
        lambda: all(invocations_of(mapping, m) for m in held), 30, message="the held messages to be delivered"
    )
    resumed = min(invocations_of(mapping, m)[0]["t"] for m in held) - enabled_at
    print(f"after Enabled=true: {enabling}; first held message delivered after {resumed:.2f}s")
    assert resumed < 10
    wait_until(lambda: counts(aws, mapping) == (0, 0), 30, message="the queue to drain")


def test_mapping_disabled_by_its_own_invocation_finishes_that_batch_only(aws, lambda_client, sqs_mapping):
    """The circuit breaker's case: the function disables the mapping that invoked it and goes on
    for a while; the poller finishes that batch (its message is deleted) and polls no more."""
    mapping = sqs_mapping(batch_size=1)
    breaker = send(aws, mapping, json.dumps({"disable_mapping": mapping.uuid, "sleep": 3}))
    wait_until(lambda: records(mapping, "disabled"), 30, message="the function to disable its mapping")
    disabled = records(mapping, "disabled")[0]["t"]
    later = [send(aws, mapping, f"after {i}") for i in range(2)]
    assert states(lambda_client, mapping) == ("Disabled", "Disabled")

    wait_until(lambda: records(mapping, "end"), 30, message="the batch in flight to finish")
    finished = records(mapping, "end")[0]["t"]
    # the batch in flight completed: its message deleted, the later ones waiting, visible
    wait_until(lambda: counts(aws, mapping) == (2, 0), 10, message="the breaker's message to be deleted")
    stays(lambda: len(records(mapping)) == 1, 10, "invoked again after the mapping was disabled")
    assert states(lambda_client, mapping) == ("Disabled", "Disabled")
    print(
        f"\ndisabled in flight: batch ended {finished - disabled:.2f}s after the disable, no invocation since"
    )

    lambda_client.update_event_source_mapping(UUID=mapping.uuid, Enabled=True)
    wait_until(
        lambda: all(invocations_of(mapping, m) for m in later),
        30,
        message="the held messages to be delivered",
    )
    assert [r["ids"] for r in records(mapping)][0] == [breaker]


def test_mapping_disabled_from_outside_during_an_invocation(aws, lambda_client, sqs_mapping):
    mapping = sqs_mapping(batch_size=1)
    slow = send(aws, mapping, json.dumps({"sleep": 4}))
    wait_until(lambda: invocations_of(mapping, slow), 30, message="the slow message to be delivered")
    started = time.monotonic()
    lambda_client.update_event_source_mapping(UUID=mapping.uuid, Enabled=False)
    transitions = watch_states(lambda_client, mapping, "Disabled", started)
    later = send(aws, mapping, "after")

    wait_until(lambda: records(mapping, "end"), 30, message="the batch in flight to finish")
    wait_until(lambda: counts(aws, mapping) == (1, 0), 10, message="the slow message to be deleted")
    stays(lambda: len(records(mapping)) == 1, 8, "invoked again after the mapping was disabled")
    assert states(lambda_client, mapping) == ("Disabled", "Disabled")
    print(f"\nafter Enabled=false with a batch in flight: {transitions}")

    # enabled again at once after the batch in flight: the state must say so, and delivery resume
    lambda_client.update_event_source_mapping(UUID=mapping.uuid, Enabled=True)
    wait_until(lambda: invocations_of(mapping, later), 30, message="the held message to be delivered")
    assert states(lambda_client, mapping) == ("Enabled", "Enabled")


def test_disabled_mapping_with_a_batching_window_hands_over_nothing_more(aws, lambda_client, sqs_mapping):
    """With a batching window the poller waits in a long-poll receive; disabled during that wait, it
    hands what the wait returns back to the queue, not to the function
    (patches.stop_sqs_polling_when_disabled)."""
    mapping = sqs_mapping(batching_window=5)
    warm = send(aws, mapping, "warm")
    wait_until(lambda: records(mapping, "end"), 30, message="the first message to be delivered")
    # after a batch the poller waits 1 s, then long-polls for up to 5 s: disable inside that poll
    ended = records(mapping, "end")[0]["t"]
    wait_until(lambda: time.time() >= ended + 2.5, 5, interval=0.05)
    lambda_client.update_event_source_mapping(UUID=mapping.uuid, Enabled=False)
    held = send(aws, mapping, "after")
    stays(
        lambda: len(records(mapping)) == 1 and sum(counts(aws, mapping)) == 1,
        8,
        "a message sent after the mapping was disabled reached the function",
    )
    assert counts(aws, mapping) == (1, 0)

    lambda_client.update_event_source_mapping(UUID=mapping.uuid, Enabled=True)
    wait_until(lambda: invocations_of(mapping, held), 30, message="the held message to be delivered")
    assert [r["ids"] for r in records(mapping)] == [[warm], [held]]


def test_state_reads_enabled_when_enabled_again_during_the_disabled_batch(aws, lambda_client, sqs_mapping):
    """Disabled and enabled again while a batch is in flight, the mapping polls, and List says so
    after that batch ends too (patches.keep_event_source_mapping_state_current)."""
    mapping = sqs_mapping(batch_size=1)
    slow = send(aws, mapping, json.dumps({"sleep": 3}))
    wait_until(lambda: invocations_of(mapping, slow), 30, message="the slow message to be delivered")
    lambda_client.update_event_source_mapping(UUID=mapping.uuid, Enabled=False)
    lambda_client.update_event_source_mapping(UUID=mapping.uuid, Enabled=True)
    wait_until(lambda: listed_state(lambda_client, mapping) == "Enabled", 10, message="List to read Enabled")

    wait_until(lambda: records(mapping, "end"), 30, message="the batch in flight to finish")
    stays(
        lambda: listed_state(lambda_client, mapping) == "Enabled",
        3,
        "List reads a state the mapping is not in",
    )
    later = send(aws, mapping, "after")
    wait_until(lambda: invocations_of(mapping, later), 30, message="the next message to be delivered")
    assert listed_state(lambda_client, mapping) == "Enabled"


def test_deleted_disabled_mapping_is_gone(aws, lambda_client, sqs_mapping):
    """A disabled mapping, once deleted, is no longer listed and does not block a new mapping
    between the same queue and function (patches.keep_event_source_mapping_state_current)."""
    mapping = sqs_mapping()
    lambda_client.update_event_source_mapping(UUID=mapping.uuid, Enabled=False)
    wait_until(
        lambda: states(lambda_client, mapping) == ("Disabled", "Disabled"), 10, message="mapping disabled"
    )
    lambda_client.delete_event_source_mapping(UUID=mapping.uuid)

    def listed():
        return lambda_client.list_event_source_mappings(FunctionName=mapping.function)["EventSourceMappings"]

    wait_until(lambda: listed() == [], 10, message="the deleted mapping to go")
    # a mapping created disabled, then deleted, goes too
    again = lambda_client.create_event_source_mapping(
        EventSourceArn=mapping.queue_arn, FunctionName=mapping.function, Enabled=False
    )["UUID"]
    try:
        assert [e["State"] for e in listed()] == ["Disabled"]
    finally:
        lambda_client.delete_event_source_mapping(UUID=again)
    wait_until(lambda: listed() == [], 10, message="the second deleted mapping to go")


def test_visibility_set_by_the_function_outlasts_its_failure_report(aws, sqs_mapping):
    """A message the function hides with ChangeMessageVisibility and reports in batchItemFailures
    stays hidden for the time the function chose, not the queue's visibility timeout (2 s)."""
    mapping = sqs_mapping(batch_size=1, visibility_timeout=2)
    hidden = send(aws, mapping, json.dumps({"fail_first": True, "visibility": 10}))
    plain = send(aws, mapping, json.dumps({"fail_first": True}))

    def both_redelivered():
        return all(len(invocations_of(mapping, m)) >= 2 for m in (hidden, plain))

    wait_until(both_redelivered, 45, message="both failed messages to be delivered again")
    gaps = {}
    for name, message in (("hidden", hidden), ("plain", plain)):
        first, second = invocations_of(mapping, message)[:2]
        assert (first["receive_counts"], second["receive_counts"]) == ([1], [2])
        gaps[name] = second["t"] - first["t"]
    print(f"\nredelivered after: {gaps}")
    assert gaps["hidden"] >= 10
    assert gaps["plain"] < 9
    wait_until(lambda: counts(aws, mapping) == (0, 0), 30, message="the queue to drain")


def test_delayed_message_is_delivered_after_its_delay(aws, sqs_mapping):
    mapping = sqs_mapping()
    sent = time.time()
    delayed = send(aws, mapping, "delayed", DelaySeconds=5)
    assert counts(aws, mapping) == (0, 0)
    wait_until(lambda: invocations_of(mapping, delayed), 40, message="the delayed message to be delivered")
    latency = invocations_of(mapping, delayed)[0]["t"] - sent
    print(f"\ndelayed 5 s, delivered after {latency:.2f}s")
    assert 5 <= latency < 25
