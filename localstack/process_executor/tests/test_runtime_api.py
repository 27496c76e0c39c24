"""Tests of runtime_api.ProcessRuntime alone (no LocalStack): the in-process hand-over of invocations and
results, and the REPORT line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from concurrent.futures import Future
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from localstack_process_executor.limits import PARENT, Limits, cpu_quota_us  # noqa: E402
from localstack_process_executor.runtime_api import (  # noqa: E402
    ProcessRuntime,
    billed_duration_ms,
    peak_rss_mb,
)

BOOTSTRAP = Path(__file__).resolve().parent / "functions" / "bootstrap.py"


class Runtime:
    """A ProcessRuntime on the test bootstrap, with what it reported."""

    def __init__(
        self,
        timeout_s: float = 10,
        env: dict[str, str] | None = None,
        memory_size: int = 256,
        limits: Limits | None = None,
    ):
        self.task_root = tempfile.mkdtemp(prefix="pe-unit-")
        bootstrap = os.path.join(self.task_root, "bootstrap")
        shutil.copy(BOOTSTRAP, bootstrap)
        os.chmod(bootstrap, 0o755)
        self.startup: Future = Future()
        self.results: dict[str, Future] = {}
        self.lock = threading.Lock()
        self.runtime = ProcessRuntime(
            runtime_id=uuid.uuid4().hex,
            bootstrap=bootstrap,
            task_root=self.task_root,
            env={"PATH": os.environ["PATH"], **(env or {})},
            timeout_s=timeout_s,
            on_ready=lambda: self.startup.set_result("ready"),
            on_init_error=lambda payload: self.startup.set_result(json.loads(payload)),
            on_result=self._on_result,
            memory_size=memory_size,
            limits=limits,
        )

    def _on_result(self, request_id, is_error, body, logs):
        with self.lock:
            future = self.results.setdefault(request_id, Future())
        future.set_result((is_error, json.loads(body), logs))

    def invoke(self, event: dict, timeout: float = 30):
        request_id = str(uuid.uuid4())
        with self.lock:
            future = self.results.setdefault(request_id, Future())
        self.runtime.submit(
            {"invoke-id": request_id, "payload": json.dumps(event), "invoked-function-arn": "arn:test"}
        )
        return future.result(timeout)

    def close(self):
        self.runtime.stop()
        shutil.rmtree(self.task_root, ignore_errors=True)


@pytest.fixture
def runtime():
    made = []

    def make(**kwargs) -> Runtime:
        made.append(Runtime(**kwargs))
        made[-1].runtime.start()
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def limits():
    """Lambda's limits where this machine allows them (cgroup v1, as root); the test is skipped elsewhere."""
    made, why_not = Limits.detect()
    if made is None:
        pytest.skip(f"no memory and CPU limits on this machine: {why_not}")
    yield made
    made.close()


def report_fields(logs: str) -> dict[str, str]:
    line = next(line for line in logs.splitlines() if line.startswith("REPORT RequestId:"))
    return dict(field.split(": ", 1) for field in line[len("REPORT ") :].split("\t"))


def test_billed_duration_rounds_up_to_whole_ms():
    assert billed_duration_ms(3.0) == 3
    assert billed_duration_ms(3.01) == 4
    assert billed_duration_ms(0.2) == 1
    assert billed_duration_ms(0.0) == 1


def test_peak_rss_is_read_from_proc():
    assert peak_rss_mb(os.getpid()) >= 1
    assert peak_rss_mb(2**22 + 7) is None  # above pid_max: no such process


def test_results_and_logs_are_handed_over_in_process(runtime):
    r = runtime()
    assert r.startup.result(30) == "ready"
    is_error, payload, logs = r.invoke({"print": "hello from the function"})
    assert not is_error
    assert payload["echo"] == {"print": "hello from the function"}
    assert "hello from the function\n" in logs
    assert "bootstrap: init done" in logs  # init output comes with the first invocation
    lines = logs.splitlines()
    assert lines[0].startswith("START RequestId: ") and lines[0].endswith(" Version: $LATEST")
    assert lines[-2].startswith("END RequestId: ")
    fields = report_fields(logs)
    duration = float(fields["Duration"].removesuffix(" ms"))
    assert fields["Billed Duration"] == f"{billed_duration_ms(duration)} ms"
    assert fields["Memory Size"] == "256 MB"
    assert re.fullmatch(r"[1-9]\d* MB", fields["Max Memory Used"]), fields

    # warm: the same process, and only this invocation's output
    is_error, again, logs = r.invoke({"print": "second"})
    assert not is_error and again["pid"] == payload["pid"]
    assert "bootstrap: init done" not in logs and "second\n" in logs


def test_handler_error_is_reported_as_error(runtime):
    r = runtime()
    is_error, payload, _ = r.invoke({"action": "error", "type": "Custom.Error", "message": "no"})
    assert is_error
    assert payload == {"errorType": "Custom.Error", "errorMessage": "no"}


def test_timeout_is_reported_and_the_bootstrap_respawns(runtime):
    r = runtime(timeout_s=1)
    is_error, first, _ = r.invoke({"action": "echo"})
    assert not is_error
    is_error, payload, logs = r.invoke({"action": "sleep", "seconds": 30})
    assert is_error and payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in logs
    assert report_fields(logs)["Status"] == "timeout"
    is_error, after, _ = r.invoke({"action": "echo"})
    assert not is_error and after["pid"] != first["pid"]


def test_init_error_is_reported(runtime):
    r = runtime(env={"INIT_MODE": "init-error"})
    assert r.startup.result(30) == {"errorType": "Init.Broken", "errorMessage": "cannot initialize"}



def test_cpu_share_follows_the_memory_size_as_on_lambda():
    assert cpu_quota_us(1769) == 100_000
    assert cpu_quota_us(128) == 7_235
    assert cpu_quota_us(10_240) == 578_858
    assert cpu_quota_us(1) == 1_000


def test_a_function_that_outgrows_its_memory_is_killed_as_on_lambda(runtime, limits):
    r = runtime(memory_size=128, limits=limits)
    assert r.invoke({"action": "allocate", "mb": 16})[0] is False
    is_error, body, logs = r.invoke({"action": "allocate", "mb": 256})
    assert is_error
    assert body["errorType"] == "Runtime.ExitError"
    assert "Runtime exited with error: signal: killed" in body["errorMessage"]
    assert "Runtime.ExitError" in logs
    # the next invocation gets a new bootstrap, held to the same limit
    is_error, body, _ = r.invoke({"action": "echo"})
    assert not is_error
    assert body["echo"] == {"action": "echo"}


def test_a_function_gets_the_cpu_share_of_its_memory_size(runtime, limits):
    r = runtime(memory_size=128, limits=limits)
    is_error, body, _ = r.invoke({"action": "burn", "cpu_ms": 50})
    assert not is_error
    # 50 ms of CPU at 7,235 µs per 100 ms period take six periods or more; unconstrained, about 50 ms
    assert body["slept"][1] >= 0.3, body["slept"]


def test_a_process_leaves_no_cgroup_behind(runtime, limits):
    r = runtime(memory_size=128, limits=limits)
    assert r.invoke({"action": "echo"})[0] is False
    assert [d.name for d in limits.cpu_parent.iterdir() if d.is_dir()] != []
    r.close()
    for parent in (limits.cpu_parent, limits.memory_parent):
        assert [d.name for d in parent.iterdir() if d.is_dir()] == []


def test_only_the_cgroups_of_an_ended_localstack_are_cleared(limits):
    own = limits.cpu_parent.parent
    alive = subprocess.Popen(["sleep", "60"])
    ended = subprocess.Popen(["true"])
    ended.wait()
    try:
        for pid in (alive.pid, ended.pid):
            (own / f"{PARENT}-{pid}" / "ab12cd34-1").mkdir(parents=True)
        Limits.detect()
        assert (own / f"{PARENT}-{alive.pid}" / "ab12cd34-1").is_dir()
        assert not (own / f"{PARENT}-{ended.pid}").exists()
    finally:
        alive.kill()
        alive.wait()
        Limits.remove([own / f"{PARENT}-{alive.pid}" / "ab12cd34-1", own / f"{PARENT}-{alive.pid}"])
