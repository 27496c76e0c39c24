"""What both Python peers send with each record (imports nothing heavy, so neither peer pays for
the other's client)."""

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord


def headers(record: SQSRecord) -> dict:
    """The headers the Rust forwarder sends from the store's message attributes."""
    attributes = record.message_attributes
    content_type = attributes["ContentType"]
    key = attributes["IdempotencyKey"]
    return {
        "Content-Type": content_type.string_value if content_type else "application/json",
        **({"Idempotency-Key": key.string_value} if key else {}),
    }
