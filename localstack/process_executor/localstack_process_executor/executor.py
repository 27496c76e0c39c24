"""LocalStack runtime executor that runs ``provided.*`` Lambda functions as local subprocesses.

Selected with ``LAMBDA_RUNTIME_EXECUTOR=process``. LocalStack drives it through the ``RuntimeExecutor``
interface (localstack/services/lambda_/invocation/runtime_executor.py). The part that plays the Lambda
runtime init is ``runtime_api.ProcessRuntime``, in LocalStack's own process: ``invoke()`` hands it the
invocation and waits for its result, and ``start()`` waits for its ready or init error, both in-process.
They raise and return what LocalStack's HTTP ``ExecutorEndpoint`` (executor_endpoint.py) would, which the
Docker executor uses to talk to its runtime init in a container, without its three HTTP requests per
invocation.
"""

from __future__ import annotations

import atexit
import logging
import os
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import CancelledError, Future, InvalidStateError

from localstack import config
from localstack.aws.api.lambda_ import Architecture, PackageType, Runtime
from localstack.services.lambda_.invocation.executor_endpoint import (
    NAMESPACE,
    ShutdownDuringStartup,
    StatusErrorException,
)
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.runtime_executor import LambdaRuntimeException, RuntimeExecutor

from .limits import Limits
from .runtime_api import LIVE_RUNTIMES, LIVE_RUNTIMES_LOCK, ProcessRuntime

LOG = logging.getLogger(__name__)

SUPPORTED_RUNTIMES = {Runtime.provided_al2023, Runtime.provided_al2, Runtime.provided}

# Host machine name (platform.machine()) for each Lambda architecture.
HOST_MACHINES = {
    Architecture.x86_64: {"x86_64", "amd64"},
    Architecture.arm64: {"aarch64", "arm64"},
}

# Variables of LocalStack's own runtime init protocol: the function does not need them.
INTERNAL_VARIABLES = {
    "LOCALSTACK_RUNTIME_ID",
    "LOCALSTACK_RUNTIME_ENDPOINT",
    "LOCALSTACK_CHMOD_PATHS",
    "LOCALSTACK_USER",
    "LOCALSTACK_INIT_LOG_LEVEL",
    "LOCALSTACK_POST_INVOKE_WAIT_MS",
    "LOCALSTACK_MAX_PAYLOAD_SIZE",
    "LOCALSTACK_HOT_RELOADING_PATHS",
}

STANDARD_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]

# How long invoke() waits for a result at most, as ExecutorEndpoint does: Lambda's longest timeout plus a
# margin. The function's own timeout is enforced by the runtime, which then reports Sandbox.Timedout.
MAX_INVOKE_WAIT_S = 900 + 5

# Lambda's memory limit and CPU share on each bootstrap (LAMBDA_PROCESS_LIMITS=1, where the machine allows
# them); set once by validate_environment.
LIMITS: Limits | None = None


def gateway_host() -> str:
    """The address functions use to reach LocalStack: the gateway's, or loopback when it listens on all."""
    if config.HOSTNAME_FROM_LAMBDA:
        return config.HOSTNAME_FROM_LAMBDA
    host = config.GATEWAY_LISTEN[0].host
    if host in ("", "0.0.0.0", "::", "[::]"):
        return "127.0.0.1"
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def gateway_url() -> str:
    return f"http://{gateway_host()}:{config.GATEWAY_LISTEN[0].port}"


def function_path() -> str:
    """PATH for functions: the one LocalStack was started with, minus LocalStack's own venv."""
    venv_bin = os.path.join(sys.prefix, "bin")
    entries = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    for p in STANDARD_PATH:
        if p not in entries:
            entries.append(p)
    return os.pathsep.join(entries)


def check_supported(function_version: FunctionVersion) -> None:
    """Raise (-> function State=Failed with this reason) for what this executor cannot run."""
    cfg = function_version.config
    name = function_version.id.function_name
    if cfg.package_type != PackageType.Zip:
        raise LambdaRuntimeException(
            f"LAMBDA_RUNTIME_EXECUTOR=process cannot run function {name}: container image functions "
            "(PackageType=Image) need Docker. Use a provided.al2023 zip package, or LocalStack with Docker."
        )
    if cfg.runtime not in SUPPORTED_RUNTIMES:
        raise LambdaRuntimeException(
            f"LAMBDA_RUNTIME_EXECUTOR=process cannot run function {name}: runtime {cfg.runtime} is not supported; "
            f"only {', '.join(sorted(SUPPORTED_RUNTIMES))} (a zip with an executable 'bootstrap') run as local "
            "processes. Use LocalStack with Docker for other runtimes."
        )
    architecture = (cfg.architectures or [Architecture.x86_64])[0]
    machine = platform.machine().lower()
    if not config.LAMBDA_IGNORE_ARCHITECTURE and machine not in HOST_MACHINES.get(architecture, set()):
        raise LambdaRuntimeException(
            f"LAMBDA_RUNTIME_EXECUTOR=process cannot run function {name}: its architecture {architecture} "
            f"does not match this host ({machine}). Build the function for "
            f"{'x86_64' if machine in HOST_MACHINES[Architecture.x86_64] else 'arm64'} and create it with that "
            "architecture (or set LAMBDA_IGNORE_ARCHITECTURE=1 if the host can run it anyway)."
        )
    if cfg.layers:
        LOG.warning(
            "Function %s has %d layer(s): the process executor ignores layers (nothing is mounted at /opt).",
            name,
            len(cfg.layers),
        )


# ELF e_machine values (see elf.h)
ELF_MACHINES = {62: "x86_64", 183: "aarch64", 3: "i386", 40: "arm"}


def check_bootstrap_binary(function_version: FunctionVersion) -> None:
    """Refuse a bootstrap that is an executable for another CPU: it could only fail with 'exec format error'
    at every invocation. Scripts and a missing bootstrap are left to invocation time (like AWS)."""
    if config.LAMBDA_IGNORE_ARCHITECTURE or function_version.config.package_type != PackageType.Zip:
        return
    bootstrap = os.path.join(str(function_version.config.code.get_unzipped_code_location()), "bootstrap")
    try:
        with open(bootstrap, "rb") as f:
            header = f.read(20)
    except OSError:
        return
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return
    byteorder = "little" if header[5] == 1 else "big"
    e_machine = int.from_bytes(header[18:20], byteorder)
    binary = ELF_MACHINES.get(e_machine, f"machine {e_machine}")
    host = platform.machine().lower()
    host_names = {"x86_64": {"x86_64", "amd64"}, "aarch64": {"aarch64", "arm64"}}.get(binary, {binary})
    if host not in host_names:
        raise LambdaRuntimeException(
            f"LAMBDA_RUNTIME_EXECUTOR=process cannot run function {function_version.id.function_name}: its "
            f"bootstrap is an {binary} executable but this host is {host}. Build it for the host "
            f"(cargo lambda build --{'x86-64' if host in ('x86_64', 'amd64') else 'arm64'})."
        )


class ProcessRuntimeExecutor(RuntimeExecutor):
    runtime: ProcessRuntime | None

    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id=id, function_version=function_version)
        self.runtime = None
        self.stopped = False
        # settled by the runtime's first init: True, or StatusErrorException; cancelled by stop()
        self.startup: Future[bool] = Future()
        # the invocations waiting for their result, by request id
        self.invocations: dict[str, Future[InvocationResult]] = {}
        self.invocations_lock = threading.Lock()

    # -- lifecycle

    def start(self, env_vars: dict[str, str]) -> None:
        cfg = self.function_version.config
        task_root = str(cfg.code.get_unzipped_code_location())
        scratch = tempfile.mkdtemp(prefix=f"{self.id[:8]}-", dir=_scratch_root())
        os.makedirs(os.path.join(scratch, "tmp"), exist_ok=True)

        env = self._function_environment(env_vars, task_root, scratch)
        self.runtime = ProcessRuntime(
            runtime_id=self.id,
            bootstrap=os.path.join(task_root, "bootstrap"),
            task_root=task_root,
            env=env,
            timeout_s=float(cfg.timeout or 3),
            on_ready=self._on_ready,
            on_init_error=self._on_init_error,
            on_result=self._on_result,
            scratch_dir=scratch,
            function_version=self.function_version.id.qualifier,
            memory_size=int(cfg.memory_size or 128),
            max_payload_bytes=int(config.LAMBDA_LIMITS_MAX_FUNCTION_PAYLOAD_SIZE_BYTES),
            on_init_failure_logs=lambda text: self._store_logs(env.get("AWS_LAMBDA_LOG_STREAM_NAME"), text),
            limits=LIMITS,
        )
        self.runtime.start()
        if self.stopped:
            # stop() came (startup timeout) before there was a runtime to stop
            self.runtime.stop()
        LOG.debug(
            "Process executor %s for %s: task root %s", self.id, self.function_version.qualified_arn, task_root
        )
        try:
            self.startup.result()
        except CancelledError as e:
            raise ShutdownDuringStartup("Executor environment shutdown during startup") from e

    def _on_ready(self) -> None:
        _settle(self.startup, True)

    def _on_init_error(self, payload: bytes) -> None:
        _settle(self.startup, StatusErrorException("Environment startup failed", payload=payload))

    def _on_result(self, request_id: str, is_error: bool, body: bytes, logs: str) -> None:
        with self.invocations_lock:
            future = self.invocations.get(request_id)
        if future is not None:
            _settle(future, InvocationResult(request_id, body, is_error=is_error, logs=logs))

    def _function_environment(self, env_vars: dict, task_root: str, scratch: str) -> dict[str, str]:
        """LocalStack's variables for the function, fixed up for a local process. Nothing of LocalStack's own
        process environment gets in, except a PATH to find interpreters with."""
        user_env = self.function_version.config.environment or {}
        env = {
            key: str(value)
            for key, value in env_vars.items()
            if value is not None and key not in INTERNAL_VARIABLES
        }
        # reserved on AWS: the function's own configuration cannot change these
        env["LAMBDA_TASK_ROOT"] = task_root
        env["LAMBDA_RUNTIME_DIR"] = task_root
        # unreserved: the function's configuration wins
        defaults = {
            "PATH": function_path(),
            "HOME": scratch,
            "TMPDIR": os.path.join(scratch, "tmp"),
            "LANG": "C.UTF-8",
            "LD_LIBRARY_PATH": f"{task_root}/lib:{task_root}",
        }
        if not config.LAMBDA_DISABLE_AWS_ENDPOINT_URL:
            defaults["AWS_ENDPOINT_URL"] = gateway_url()
        for key, value in defaults.items():
            if key not in user_env:
                env[key] = value
        return env

    def _store_logs(self, log_stream: str | None, text: str) -> None:
        """Write log lines to the function's log group, as LocalStack's LogHandler does for invocations."""
        from localstack.aws.connect import connect_to
        from localstack.utils.aws.client_types import ServicePrincipal

        fv = self.function_version
        group = f"/aws/lambda/{fv.id.function_name}"
        stream = log_stream or f"init/{self.id}"
        events = [
            {"timestamp": int(time.time() * 1000), "message": line + "\n"}
            for line in text.split("\n")
            if line
        ]
        try:
            logs = connect_to.with_assumed_role(
                region_name=fv.id.region, role_arn=fv.config.role, service_principal=ServicePrincipal.lambda_
            ).logs
            try:
                logs.create_log_group(logGroupName=group)
            except logs.exceptions.ResourceAlreadyExistsException:
                pass
            try:
                logs.create_log_stream(logGroupName=group, logStreamName=stream)
            except logs.exceptions.ResourceAlreadyExistsException:
                pass
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
        except Exception as e:
            LOG.warning("Could not store init logs of %s in CloudWatch Logs: %s", fv.qualified_arn, e)

    def stop(self) -> None:
        self.stopped = True
        if self.runtime:
            self.runtime.stop()
        # what still waits gets CancelledError, as from ExecutorEndpoint.shutdown()
        self.startup.cancel()
        with self.invocations_lock:
            waiting = list(self.invocations.values())
        for future in waiting:
            future.cancel()

    # -- addresses

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return gateway_host()

    def get_runtime_endpoint(self) -> str:
        # only for LOCALSTACK_RUNTIME_ENDPOINT, which the function does not get (INTERNAL_VARIABLES)
        return f"{gateway_url()}{NAMESPACE}/{self.id}"

    # -- work

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        if self.runtime is None:
            raise LambdaRuntimeException(f"Execution environment {self.id} got an invoke before it started")
        request_id = payload["invoke-id"]
        future: Future[InvocationResult] = Future()
        with self.invocations_lock:
            self.invocations[request_id] = future
        try:
            if self.stopped:
                future.cancel()
            else:
                self.runtime.submit(payload)
            return future.result(timeout=MAX_INVOKE_WAIT_S)
        finally:
            with self.invocations_lock:
                self.invocations.pop(request_id, None)

    def get_logs(self) -> str:
        return self.runtime.get_logs() if self.runtime else ""

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        try:
            check_supported(function_version)
        except LambdaRuntimeException as e:
            LOG.warning("%s", e)
            raise
        if function_version.config.code:
            function_version.config.code.prepare_for_execution()
            try:
                check_bootstrap_binary(function_version)
            except LambdaRuntimeException as e:
                LOG.warning("%s", e)
                raise

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        pass

    @classmethod
    def validate_environment(cls) -> bool:
        global LIMITS
        LOG.info(
            "Lambda: process executor active: provided.* zip functions for %s run as local processes",
            platform.machine(),
        )
        if os.environ.get("LAMBDA_PROCESS_LIMITS") == "1" and LIMITS is None:
            LIMITS, why_not = Limits.detect()
            if LIMITS:
                LOG.info("Lambda: each function is held to its memory size and its share of a CPU (cgroups)")
            else:
                LOG.warning("Lambda: LAMBDA_PROCESS_LIMITS=1, but functions run without limits: %s", why_not)
        return True


def _settle(future: Future, outcome) -> None:
    """Set a future's result (or exception) unless it was cancelled or settled already."""
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except InvalidStateError:
        pass


def _scratch_root() -> str:
    root = os.path.join(tempfile.gettempdir(), "lambda-process-executor")
    os.makedirs(root, exist_ok=True)
    return root


@atexit.register
def _kill_leftover_bootstraps() -> None:
    with LIVE_RUNTIMES_LOCK:
        runtimes = list(LIVE_RUNTIMES)
    for runtime in runtimes:
        runtime.kill_all_now()
    if LIMITS:
        LIMITS.close()
