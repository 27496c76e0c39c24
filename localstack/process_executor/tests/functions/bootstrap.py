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
        result = {"batchItemFailures": []}
    else:
        action = event.get("action", "echo")
        if action == "sleep":
            time.sleep(float(event["seconds"]))
        elif action == "exit":
            sys.exit(int(event.get("code", 1)))
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
