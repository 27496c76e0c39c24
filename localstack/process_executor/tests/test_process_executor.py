"""End-to-end tests of LAMBDA_RUNTIME_EXECUTOR=process against a real LocalStack (host mode, no Docker)."""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import ENDPOINT, LEAK_MARKER, REGION, invoke, pid_alive, wait_for_state, wait_until


def log_messages(aws, name, needle):
    """The messages of /aws/lambda/<name> once one of them contains needle, else None."""
    logs = aws("logs")
    try:
        events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
    except logs.exceptions.ResourceNotFoundException:
        return None
    messages = [e["message"] for e in events]
    return messages if any(needle in m for m in messages) else None


def test_invoke_returns_payload(lambda_client, make_function):
    name = make_function()
    response, payload, _ = invoke(lambda_client, name, {"hello": "world", "n": 1})
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert payload["echo"] == {"hello": "world", "n": 1}
    assert payload["arn"].endswith(f":function:{name}")
    assert payload["deadline_ms"] > time.time() * 1000

    # the same process serves the next invocation (warm start)
    _, again, _ = invoke(lambda_client, name, {"hello": "again"})
    assert again["echo"] == {"hello": "again"}
    assert again["pid"] == payload["pid"]


def test_function_environment(lambda_client, make_function):
    name = make_function(env={"GREETING": "hi", "NUMBER": "7"})
    _, payload, _ = invoke(lambda_client, name, {"action": "call-localstack"})
    env = payload["env"]
    assert env["GREETING"] == "hi" and env["NUMBER"] == "7"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "10"
    assert env["AWS_REGION"] == REGION
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert env["AWS_ENDPOINT_URL"] == ENDPOINT.replace("localhost", "127.0.0.1")
    # the code dir is the task root and the working directory
    assert env["LAMBDA_TASK_ROOT"] == payload["cwd"]
    assert Path(env["LAMBDA_TASK_ROOT"], "bootstrap").is_file()
    assert Path(env["TMPDIR"]).is_dir() and Path(env["HOME"]).is_dir()
    # LocalStack's own process environment does not leak into the function
    assert LEAK_MARKER not in env
    assert "LOCALSTACK_RUNTIME_ENDPOINT" not in env
    assert "GATEWAY_LISTEN" not in env and "LAMBDA_RUNTIME_EXECUTOR" not in env
    # and the function reaches LocalStack through AWS_ENDPOINT_URL
    assert payload["localstack_status"] == 200


def test_function_can_override_endpoint_url(lambda_client, make_function):
    name = make_function(env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    _, payload, _ = invoke(lambda_client, name, {})
    assert payload["env"]["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"


def test_handler_error(lambda_client, make_function):
    name = make_function()
    response, payload, _ = invoke(
        lambda_client, name, {"action": "error", "type": "ValidationError", "message": "bad input"}
    )
    assert response["FunctionError"] == "Unhandled"
    assert payload == {"errorType": "ValidationError", "errorMessage": "bad input"}
    # an error is no crash: the same process goes on
    _, first, _ = invoke(lambda_client, name, {})
    _, second, _ = invoke(lambda_client, name, {})
    assert first["pid"] == second["pid"]


def test_timeout_is_enforced_and_runtime_respawns(lambda_client, make_function):
    name = make_function(timeout=2)
    _, warm, _ = invoke(lambda_client, name, {})
    old_pid = warm["pid"]

    response, payload, elapsed = invoke(lambda_client, name, {"action": "sleep", "seconds": 60})
    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in payload["errorMessage"]
    assert 2 <= elapsed < 10, elapsed
    # the hung bootstrap was killed ...
    wait_until(lambda: not pid_alive(old_pid), 10, message=f"timed-out bootstrap {old_pid} to die")

    # ... and the next invocation gets a fresh one
    response, payload, elapsed = invoke(lambda_client, name, {"after": "timeout"})
    assert "FunctionError" not in response, payload
    assert payload["echo"] == {"after": "timeout"}
    assert payload["pid"] != old_pid
    assert elapsed < 10


def test_crash_reports_exit_error_and_runtime_respawns(lambda_client, make_function):
    name = make_function()
    response, payload, elapsed = invoke(lambda_client, name, {"action": "exit", "code": 3})
    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in payload["errorMessage"]
    assert elapsed < 10

    response, payload, _ = invoke(lambda_client, name, {"after": "crash"})
    assert "FunctionError" not in response, payload
    assert payload["echo"] == {"after": "crash"}


def test_crash_during_init_fails_fast(aws, lambda_client, make_function):
    name = make_function(env={"INIT_MODE": "crash"})
    response, payload, elapsed = invoke(lambda_client, name, {})
    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.ExitError"
    assert "exit status 7" in payload["errorMessage"]
    assert elapsed < 15
    # what the bootstrap printed before dying is in CloudWatch Logs, for `aws logs` to show
    messages = wait_until(lambda: log_messages(aws, name, "INIT_REPORT"), 30, message="init logs")
    assert any("bootstrap: giving up during init" in m for m in messages)


def test_init_error_is_reported(lambda_client, make_function):
    name = make_function(env={"INIT_MODE": "init-error"})
    response, payload, elapsed = invoke(lambda_client, name, {})
    assert response["FunctionError"] == "Unhandled"
    assert payload == {"errorType": "Init.Broken", "errorMessage": "cannot initialize"}
    assert elapsed < 15


def test_missing_bootstrap_is_reported(lambda_client, make_function):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "no bootstrap here")
    name = make_function(code=buffer.getvalue())
    response, payload, elapsed = invoke(lambda_client, name, {})
    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.InvalidEntrypoint"
    assert "bootstrap: no such file or directory" in payload["errorMessage"]
    assert elapsed < 15


def test_concurrent_invocations_run_in_parallel(lambda_client, make_function):
    name = make_function()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(
                lambda i: invoke(lambda_client, name, {"action": "sleep", "seconds": 3, "i": i}), range(4)
            )
        )
    for response, payload, _ in results:
        assert "FunctionError" not in response, payload
    assert sorted(payload["echo"]["i"] for _, payload, _ in results) == [0, 1, 2, 3]
    # four execution environments, four processes, side by side
    assert len({payload["pid"] for _, payload, _ in results}) == 4
    # and their 3 s sleeps overlapped: a moment when all four were sleeping, however long the
    # four cold starts took on a loaded machine (which a wall-clock bound would measure instead),
    # as long as they all started within 3 s of each other
    slept = [payload["slept"] for _, payload, _ in results]
    assert max(start for start, _ in slept) < min(end for _, end in slept), slept


def test_output_reaches_cloudwatch_logs(aws, lambda_client, make_function):
    name = make_function()
    marker = f"marker-{uuid.uuid4().hex}"
    response, _, _ = invoke(lambda_client, name, {"print": f"stdout {marker}", "stderr": f"stderr {marker}"})
    assert "FunctionError" not in response
    messages = wait_until(
        lambda: log_messages(aws, name, f"stderr {marker}"),
        30,
        message="the function's output in CloudWatch Logs",
    )
    assert any(f"stdout {marker}" in m for m in messages)
    assert any(m.startswith("START RequestId:") for m in messages)
    assert any(m.startswith("END RequestId:") for m in messages)
    report = next(m for m in messages if m.startswith("REPORT RequestId:"))
    fields = dict(f.split(": ", 1) for f in report[len("REPORT ") :].strip().split("\t"))
    # billed: every started millisecond
    duration = float(fields["Duration"].removesuffix(" ms"))
    assert fields["Billed Duration"] == f"{max(1, math.ceil(duration))} ms", report
    assert fields["Memory Size"] == "128 MB", report
    assert re.fullmatch(r"[1-9]\d* MB", fields["Max Memory Used"]), report
    # init output is logged with the first invocation
    assert any("bootstrap: init done" in m for m in messages)


def test_timeout_is_logged(aws, lambda_client, make_function):
    name = make_function(timeout=2)
    marker = f"before-timeout-{uuid.uuid4().hex}"
    invoke(lambda_client, name, {"print": marker, "action": "sleep", "seconds": 60})
    messages = wait_until(
        lambda: log_messages(aws, name, "Task timed out"), 30, message="the timeout in CloudWatch Logs"
    )
    assert any(marker in m for m in messages)


def test_arm64_function_is_refused(lambda_client, make_function):
    name = make_function(architecture="arm64", wait=False)
    cfg = wait_for_state(lambda_client, name)
    assert cfg["State"] == "Failed"
    assert "architecture arm64 does not match this host" in cfg["StateReason"]


def test_bootstrap_for_another_cpu_is_refused(lambda_client, make_function):
    # the first bytes of an aarch64 ELF executable, declared as an x86_64 function
    elf = bytearray(64)
    elf[:7] = b"\x7fELF\x02\x01\x01"
    elf[18:20] = (183).to_bytes(2, "little")  # EM_AARCH64
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        archive.writestr(info, bytes(elf))
    name = make_function(code=buffer.getvalue(), wait=False)
    cfg = wait_for_state(lambda_client, name)
    assert cfg["State"] == "Failed"
    assert "bootstrap is an aarch64 executable but this host is x86_64" in cfg["StateReason"]


def test_non_provided_runtime_is_refused(lambda_client, make_function):
    name = make_function(runtime="python3.12", wait=False)
    cfg = wait_for_state(lambda_client, name)
    assert cfg["State"] == "Failed"
    assert "runtime python3.12 is not supported" in cfg["StateReason"]


def test_delete_function_stops_its_processes(lambda_client, make_function):
    name = make_function()
    _, payload, _ = invoke(lambda_client, name, {})
    pid = payload["pid"]
    assert pid_alive(pid)
    lambda_client.delete_function(FunctionName=name)
    wait_until(lambda: not pid_alive(pid), 20, message=f"bootstrap {pid} to stop after delete")


def test_sqs_event_source_mapping(aws, lambda_client, make_function):
    name = make_function()
    sqs = aws("sqs")
    queue_url = sqs.create_queue(QueueName=f"pe-test-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    # SQS_ENDPOINT_STRATEGY=off: http://127.0.0.1:<port>/<account>/<name>, a form that resolves
    # offline and that the Terraform AWS provider accepts (it rejects /queue/<region>/...).
    assert queue_url.startswith("http://127.0.0.1:") and "/000000000000/pe-test-" in queue_url
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    mapping = lambda_client.create_event_source_mapping(
        EventSourceArn=queue_arn, FunctionName=name, BatchSize=1
    )
    try:
        # A JSON body with odd spacing and raw UTF-8 must reach the function byte for byte
        # (patches.keep_sqs_bodies_byte_identical).
        marker = f'{{ "esm" :"{uuid.uuid4().hex}",  "note":"café" }}'
        sqs.send_message(QueueUrl=queue_url, MessageBody=marker)
        wait_until(
            lambda: log_messages(aws, name, f"sqs message: {marker}"),
            60,
            interval=0.5,
            message="the SQS message to reach the function",
        )
        # processed messages are deleted from the queue
        wait_until(
            lambda: (
                sqs.get_queue_attributes(
                    QueueUrl=queue_url,
                    AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                )["Attributes"]
                == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
            ),
            30,
            interval=0.5,
            message="the queue to drain",
        )
    finally:
        lambda_client.delete_event_source_mapping(UUID=mapping["UUID"])
        sqs.delete_queue(QueueUrl=queue_url)


def test_api_gateway_proxy_integration(aws, lambda_client, make_function):
    name = make_function()
    arn = lambda_client.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    apigw = aws("apigateway")
    api_id = apigw.create_rest_api(name=f"pe-test-{uuid.uuid4().hex[:10]}")["id"]
    try:
        root_id = next(r["id"] for r in apigw.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
        resource_id = apigw.create_resource(restApiId=api_id, parentId=root_id, pathPart="{proxy+}")["id"]
        apigw.put_method(restApiId=api_id, resourceId=resource_id, httpMethod="ANY", authorizationType="NONE")
        apigw.put_integration(
            restApiId=api_id,
            resourceId=resource_id,
            httpMethod="ANY",
            type="AWS_PROXY",
            integrationHttpMethod="POST",
            uri=f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn}/invocations",
        )
        apigw.create_deployment(restApiId=api_id, stageName="test")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        # the classic LocalStack URL (deprecated since 3.8 but still served) and its successor
        for url in (
            f"{ENDPOINT}/restapis/{api_id}/test/_user_request_/items/42",
            f"{ENDPOINT}/_aws/execute-api/{api_id}/test/items/42",
        ):
            with opener.open(urllib.request.Request(url, data=b"{}", method="POST"), timeout=30) as response:
                assert response.status == 200
                body = json.loads(response.read())
            assert body["path"] == "/items/42", url
            assert body["method"] == "POST"
        # LocalStack alone answers this one 500 without calling the function
        # (patches.pass_multipart_bodies_without_a_boundary).
        request = urllib.request.Request(
            f"{ENDPOINT}/restapis/{api_id}/test/_user_request_/items/42",
            data=b"{}",
            method="POST",
            headers={"Content-Type": "multipart/form-data"},
        )
        with opener.open(request, timeout=30) as response:
            assert response.status == 200
            assert json.loads(response.read())["body"] == "{}"
    finally:
        apigw.delete_rest_api(restApiId=api_id)


def test_tagged_alarms_are_described_over_cbor(aws, make_function):
    """DescribeAlarms in the Smithy RPC v2 CBOR protocol answers for a tagged alarm
    (patches.skip_undefined_members_in_cbor_responses); without the patch it is a 500."""
    make_function()  # the patches load with the executor
    cloudwatch = aws("cloudwatch")
    name = f"pe-test-{uuid.uuid4().hex[:10]}"
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        Tags=[{"Key": "environment", "Value": "test"}],
    )
    try:
        request = urllib.request.Request(
            f"{ENDPOINT}/service/GraniteServiceVersion20100801/operation/DescribeAlarms",
            data=b"\xa0",  # CBOR: an empty map
            method="POST",
            headers={
                "Content-Type": "application/cbor",
                "Accept": "application/cbor",
                "smithy-protocol": "rpc-v2-cbor",
                "Authorization": f"AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/monitoring/aws4_request, SignedHeaders=host, Signature=0",
            },
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=30) as response:
            assert response.status == 200
            assert name.encode() in response.read()
    finally:
        cloudwatch.delete_alarms(AlarmNames=[name])


def test_aws_cli_reaches_localstack(make_function):
    """The AWS CLI v1 from the lock works against LocalStack (logs as `aws logs` shows them)."""
    name = make_function()
    aws_cli = Path(sys.executable).parent / "aws"
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL=ENDPOINT,
    )
    out = subprocess.run(
        [str(aws_cli), "lambda", "get-function-configuration", "--function-name", name, "--output", "json"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert json.loads(out.stdout)["Runtime"] == "provided.al2023"
