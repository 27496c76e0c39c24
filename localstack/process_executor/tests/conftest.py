"""Fixtures: a LocalStack (started with bin/start unless one already answers), AWS clients, test functions."""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

HERE = Path(__file__).resolve().parent
BIN = HERE.parents[1] / "bin"
BOOTSTRAP = HERE / "functions" / "bootstrap.py"

HOST = os.environ.get("LOCALSTACK_LISTEN_HOST", "127.0.0.1").replace("0.0.0.0", "127.0.0.1")
PORT = os.environ.get("LOCALSTACK_PORT", "4566")
ENDPOINT = f"http://{HOST}:{PORT}"
REGION = "us-east-1"
ROLE = "arn:aws:iam::000000000000:role/lambda-role"
# Set in LocalStack's own environment when the tests start it; must never reach a function.
LEAK_MARKER = "PROCESS_EXECUTOR_TEST_LEAK_MARKER"


def healthy() -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{ENDPOINT}/_localstack/health", timeout=2) as response:
            return response.status == 200
    except Exception:
        return False


def wait_until(predicate, timeout: float, interval: float = 0.2, message: str = "condition"):
    """Poll predicate() until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def localstack():
    """LocalStack at ENDPOINT. Started (and at the end stopped) here only if none is running."""
    if healthy():
        yield ENDPOINT
        return
    env = dict(os.environ, **{LEAK_MARKER: "leaked"})
    subprocess.run([str(BIN / "start")], check=True, env=env)
    try:
        yield ENDPOINT
    finally:
        subprocess.run([str(BIN / "stop")], check=True)


@pytest.fixture(scope="session")
def aws(localstack):
    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION
    )
    # one attempt only: a retried Invoke would run the function twice and hide timing
    config = Config(retries={"total_max_attempts": 1}, read_timeout=120, max_pool_connections=20)

    def client(service):
        return session.client(service, endpoint_url=localstack, config=config)

    return client


@pytest.fixture(scope="session")
def lambda_client(aws):
    return aws("lambda")


@pytest.fixture(scope="session")
def code_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        archive.writestr(info, BOOTSTRAP.read_text())
    return buffer.getvalue()


@pytest.fixture
def make_function(lambda_client, code_zip):
    """make_function(timeout=..., architecture=..., env=..., runtime=..., wait=True) -> function name."""
    created = []

    def make(timeout=10, architecture="x86_64", env=None, runtime="provided.al2023", wait=True, code=None):
        name = f"pe-test-{uuid.uuid4().hex[:10]}"
        lambda_client.create_function(
            FunctionName=name,
            Runtime=runtime,
            Role=ROLE,
            Handler="bootstrap",
            Code={"ZipFile": code or code_zip},
            Timeout=timeout,
            MemorySize=128,
            Architectures=[architecture],
            Environment={"Variables": env or {}},
        )
        created.append(name)
        if wait:
            state = wait_for_state(lambda_client, name)
            assert state["State"] == "Active", state
        return name

    yield make
    for name in created:
        try:
            lambda_client.delete_function(FunctionName=name)
        except Exception:
            pass


def wait_for_state(lambda_client, name, timeout=60):
    """Poll until the function leaves Pending; returns the configuration."""

    def settled():
        cfg = lambda_client.get_function_configuration(FunctionName=name)
        return cfg if cfg.get("State") not in (None, "Pending") else None

    return wait_until(settled, timeout, message=f"function {name} to leave Pending")


# pid of every bootstrap that answered an invocation: all must be gone at the end of the session
SEEN_PIDS: set[int] = set()


def invoke(lambda_client, name, event) -> tuple[dict, dict | list | None, float]:
    """Invoke synchronously; returns (response, decoded payload, seconds taken)."""
    started = time.monotonic()
    response = lambda_client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    elapsed = time.monotonic() - started
    raw = response["Payload"].read()
    payload = json.loads(raw) if raw else None
    if isinstance(payload, dict) and isinstance(payload.get("pid"), int):
        SEEN_PIDS.add(payload["pid"])
    return response, payload, elapsed


@pytest.fixture(scope="session", autouse=True)
def no_bootstrap_left_behind(localstack):
    """Deleting the test functions (each test's teardown) must have stopped every bootstrap process."""
    yield
    wait_until(
        lambda: not [pid for pid in SEEN_PIDS if pid_alive(pid)],
        30,
        message=f"the bootstraps {sorted(p for p in SEEN_PIDS if pid_alive(p))} to stop",
    )


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
