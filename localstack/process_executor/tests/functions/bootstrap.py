#!/usr/bin/env python3
"""Test function: a provided.al2023 'bootstrap' that speaks the Lambda Runtime API with urllib.

What it does is chosen per invocation by the event ("action") and at init by INIT_MODE.
"""

import json
import os
import sys
import time
import urllib.request

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"


def post(url, document, headers=None):
    request = urllib.request.Request(
        url, data=json.dumps(document).encode(), method="POST", headers=headers or {}
    )
    with urllib.request.urlopen(request) as response:
        response.read()


def call_aws(service, method, path, document, target=None):
    """A call to LocalStack (AWS_ENDPOINT_URL) in the JSON protocols; LocalStack does not check signatures."""
    headers = {
        "Content-Type": "application/x-amz-json-1.0" if target else "application/json",
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential=test/20260101/{os.environ['AWS_REGION']}/{service}/aws4_request, "
            "SignedHeaders=host, Signature=0"
        ),
    }
    if target:
        headers["X-Amz-Target"] = target
    request = urllib.request.Request(
        os.environ["AWS_ENDPOINT_URL"] + path,
        data=json.dumps(document).encode(),
        method=method,
        headers=headers,
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"{}")


def note(entry):
    """Append one line to RECORD_FILE (if set): what the tests read to see when the function ran."""
    if os.environ.get("RECORD_FILE"):
        with open(os.environ["RECORD_FILE"], "a") as f:
            f.write(json.dumps(dict(entry, t=time.time(), pid=os.getpid())) + "\n")


def handle_sqs_batch(records):
    """Handle an SQS batch; a JSON object body steers what happens to its message:
    {"sleep": s}: take s seconds; {"disable_mapping": uuid}: disable that event source mapping first;
    {"fail_first": true}: report the message in batchItemFailures on its first receive; with
    "visibility": n as well, set its visibility timeout to n s (ChangeMessageVisibility) before."""
    ids = [r["messageId"] for r in records]
    counts = [int(r["attributes"].get("ApproximateReceiveCount", "0")) for r in records]
    note({"event": "start", "ids": ids, "receive_counts": counts, "bodies": [r["body"] for r in records]})
    failures = []
    for r, count in zip(records, counts, strict=True):
        try:
            steer = json.loads(r["body"])
        except ValueError:
            steer = None
        if not isinstance(steer, dict):
            continue
        if steer.get("disable_mapping"):
            call_aws(
                "lambda",
                "PUT",
                f"/2015-03-31/event-source-mappings/{steer['disable_mapping']}",
                {"Enabled": False},
            )
            note({"event": "disabled", "ids": [r["messageId"]]})
        if steer.get("sleep"):
            time.sleep(float(steer["sleep"]))
        if steer.get("fail_first") and count == 1:
            if "visibility" in steer:
                _, _, _, region, account, queue = r["eventSourceARN"].split(":")
                call_aws(
                    "sqs",
                    "POST",
                    "/",
                    {
                        "QueueUrl": f"{os.environ['AWS_ENDPOINT_URL']}/{account}/{queue}",
                        "ReceiptHandle": r["receiptHandle"],
                        "VisibilityTimeout": int(steer["visibility"]),
                    },
                    target="AmazonSQS.ChangeMessageVisibility",
                )
            failures.append({"itemIdentifier": r["messageId"]})
    note({"event": "end", "ids": ids, "failures": [f["itemIdentifier"] for f in failures]})
    return failures


init_mode = os.environ.get("INIT_MODE", "")
if init_mode == "crash":
    print("bootstrap: giving up during init", flush=True)
    sys.exit(7)
if init_mode == "init-error":
    post(f"{API}/init/error", {"errorType": "Init.Broken", "errorMessage": "cannot initialize"})
    time.sleep(60)
print(f"bootstrap: init done, pid {os.getpid()}", flush=True)

while True:
    with urllib.request.urlopen(f"{API}/invocation/next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        deadline_ms = response.headers["Lambda-Runtime-Deadline-Ms"]
        arn = response.headers["Lambda-Runtime-Invoked-Function-Arn"]
        event = json.loads(response.read() or b"null")
    event = event if isinstance(event, dict) else {"value": event}

    if "print" in event:
        print(event["print"], flush=True)
    if "stderr" in event:
        print(event["stderr"], file=sys.stderr, flush=True)

    if "httpMethod" in event:  # API Gateway proxy integration
        body = {
            "path": event.get("path"),
            "method": event["httpMethod"],
            "body": event.get("body"),
            "pid": os.getpid(),
        }
        print(f"apigw request {event.get('path')}", flush=True)
        result = {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps(body),
        }
    elif "Records" in event:  # SQS event source mapping
        for record in event["Records"]:
            print(f"sqs message: {record.get('body')}", flush=True)
        result = {"batchItemFailures": handle_sqs_batch(event["Records"])}
    else:
        action = event.get("action", "echo")
        slept = None
        if action == "sleep":
            slept = [time.time()]
            time.sleep(float(event["seconds"]))
            slept.append(time.time())
        elif action == "exit":
            sys.exit(int(event.get("code", 1)))
        elif action == "allocate":
            # every page written, so that it is resident
            block = b"\x01" * (int(event["mb"]) * 1024 * 1024)
            del block
        elif action == "burn":
            started, cpu_until = time.monotonic(), time.process_time() + float(event["cpu_ms"]) / 1000
            while time.process_time() < cpu_until:
                pass
            slept = [0, time.monotonic() - started]
        elif action == "error":
            post(
                f"{API}/invocation/{request_id}/error",
                {
                    "errorType": event.get("type", "HandlerError"),
                    "errorMessage": event.get("message", "boom"),
                },
                {"Lambda-Runtime-Function-Error-Type": event.get("type", "HandlerError")},
            )
            continue
        result = {
            "echo": event,
            "slept": slept,
            "pid": os.getpid(),
            "request_id": request_id,
            "deadline_ms": int(deadline_ms),
            "arn": arn,
            "cwd": os.getcwd(),
            "env": dict(os.environ),
        }
        if action == "call-localstack":
            with urllib.request.urlopen(os.environ["AWS_ENDPOINT_URL"] + "/_localstack/health") as health:
                result["localstack_status"] = health.status

    post(f"{API}/invocation/{request_id}/response", result)
