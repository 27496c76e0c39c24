"""A local stand-in for LocalStack's Lambda runtime init (the "RIE" that runs inside a Lambda container).

One ``ProcessRuntime`` is one execution environment. It

* runs the function's ``bootstrap`` as a local subprocess (its own process group, so a timeout or a stop
  kills the whole tree),
* serves that subprocess the Lambda Runtime API (``/2018-06-01/runtime/...``) on a loopback port,
* takes invocations from LocalStack with ``submit()``, in-process, and
* reports back what the real runtime init reports over HTTP, as calls: ``on_ready`` or ``on_init_error``
  after init, and ``on_result`` (result and log text) per invocation.

The executor lives in LocalStack's own process, so nothing goes over HTTP between the two: LocalStack's
``ExecutorEndpoint`` would cost a request to an ``/invoke`` endpoint and two callbacks through the gateway
(``logs``, then ``response``) per invocation, most of the local invoke path's time.

It enforces the function timeout (``Sandbox.Timedout``), notices a bootstrap that exits
(``Runtime.ExitError``) and starts a fresh bootstrap on the next invocation. Every bootstrap spawn is a new
*generation* with its own Runtime API port: a long-poll ``/next`` left over from a killed generation can
never receive work meant for its successor.

Standard library only, so it can be unit-tested without LocalStack.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .limits import Limits

LOG = logging.getLogger(__name__)

RUNTIME_API_PREFIX = "/2018-06-01/runtime"
DEFAULT_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024 + 100
# Output kept per invocation for CloudWatch Logs; anything beyond is cut (with a note).
MAX_LOG_BYTES_PER_INVOCATION = 1024 * 1024
# Output kept for LocalStack's get_logs() diagnostics.
MAX_LOG_TAIL_BYTES = 64 * 1024

# Every live runtime, so that an interpreter exit can still kill the bootstraps (see executor.py).
LIVE_RUNTIMES: set[ProcessRuntime] = set()
LIVE_RUNTIMES_LOCK = threading.Lock()


class Invocation:
    def __init__(self, request_id: str, payload: bytes, invoked_arn: str, trace_id: str, timeout_s: float):
        self.request_id = request_id
        self.payload = payload
        self.invoked_arn = invoked_arn
        self.trace_id = trace_id
        self.timeout_s = timeout_s
        self.accepted = time.monotonic()
        self.deadline_ms = int(time.time() * 1000 + timeout_s * 1000)
        self.done = False
        self.timer: threading.Timer | None = None
        self.generation: Generation | None = None


class Generation:
    """One spawn of the bootstrap and the Runtime API server it alone talks to."""

    def __init__(self, number: int):
        self.number = number
        self.proc: subprocess.Popen | None = None
        self.server: ThreadingHTTPServer | None = None
        self.port = 0
        # set on the first GET /next (init done) or when init failed
        self.init_settled = threading.Event()
        self.initialized = False
        self.init_error: bytes | None = None
        self.dead = False
        self.exit_description = ""
        # the process is reaped by its watcher thread only; signals go out under reap_lock before that
        self.reap_lock = threading.Lock()
        self.reaped = False
        self.exited = threading.Event()
        # the cgroups holding the process to its limits, if any; removed once it is reaped
        self.cgroups: list[Path] = []
        # the invocation waiting for a /next, and the one handed out and not answered yet
        self.pending: Invocation | None = None
        self.current: Invocation | None = None

    def failure_payload(self, request_id: str | None = None) -> bytes:
        """What the caller gets when this generation never became ready."""
        if self.init_error:
            return self.init_error
        prefix = f"RequestId: {request_id} " if request_id else ""
        return error_payload(
            "Runtime.ExitError",
            f"{prefix}Error: Runtime exited with error: {self.exit_description or 'unknown'}",
        )


def describe_exit(returncode: int) -> str:
    """Same wording as the AWS runtime init: 'exit status 1', 'signal: killed'."""
    if returncode is None:
        return "unknown"
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        return f"signal: {-returncode}"
    names = {
        "SIGKILL": "killed",
        "SIGTERM": "terminated",
        "SIGSEGV": "segmentation fault",
        "SIGABRT": "aborted",
    }
    return f"signal: {names.get(name, name.lower())}"


def error_payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def billed_duration_ms(duration_ms: float) -> int:
    """Lambda bills every started millisecond: the duration rounded up, at least 1 ms."""
    return max(1, math.ceil(duration_ms))


def peak_rss_mb(pid: int) -> int | None:
    """The process's peak resident set size (VmHWM) in MB, what AWS's REPORT calls Max Memory Used;
    None when it cannot be read (the process is gone, or no /proc)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class ProcessRuntime:
    def __init__(
        self,
        *,
        runtime_id: str,
        bootstrap: str,
        task_root: str,
        env: dict[str, str],
        timeout_s: float,
        on_ready: Callable[[], None],
        on_init_error: Callable[[bytes], None],
        on_result: Callable[[str, bool, bytes, str], None],
        scratch_dir: str | None = None,
        function_version: str = "$LATEST",
        memory_size: int = 128,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        on_spawn: Callable[[int], None] | None = None,
        on_init_failure_logs: Callable[[str], None] | None = None,
        limits: Limits | None = None,
    ):
        """
        :param runtime_id: the executor id LocalStack knows this environment by
        :param bootstrap: path of the executable to run
        :param task_root: working directory of the bootstrap (the unzipped code)
        :param env: the complete environment of the bootstrap, except AWS_LAMBDA_RUNTIME_API (added per spawn)
        :param timeout_s: function timeout in seconds
        :param on_ready: called once when the first bootstrap asked for work (init done)
        :param on_init_error: called once with the error payload when the first init failed
        :param on_result: called once per submitted invocation (unless stopped first) with
            (request id, is error, response or error payload, log text ending in the REPORT line)
        :param scratch_dir: removed on stop (the bootstrap's HOME/TMPDIR live there)
        :param on_spawn: called with the pid of each bootstrap started
        :param on_init_failure_logs: gets the log text of a failed first init (no invocation carries it)
        :param limits: where given, each bootstrap runs held to ``memory_size`` and its CPU share
        """
        self.runtime_id = runtime_id
        self.bootstrap = bootstrap
        self.task_root = task_root
        self.env = dict(env)
        self.timeout_s = float(timeout_s)
        self.on_ready = on_ready
        self.on_init_error = on_init_error
        self.on_result = on_result
        self.scratch_dir = scratch_dir
        self.function_version = function_version
        self.memory_size = memory_size
        self.limits = limits
        self.max_payload_bytes = max_payload_bytes
        self.on_spawn = on_spawn
        self.on_init_failure_logs = on_init_failure_logs
        self.started = time.monotonic()

        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.generation: Generation | None = None
        self.generation_counter = 0
        self.stopped = False
        # one pipe for stdout+stderr of every generation, read by one thread
        self.log_read_fd = -1
        self.log_write_fd = -1
        self.log_lock = threading.Lock()
        self.log_buffer = bytearray()
        self.log_dropped = 0
        self.log_tail = bytearray()
        self.log_eof = False
        self.reader_thread: threading.Thread | None = None
        # serializes "make sure a bootstrap is up" between invocations
        self.spawn_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the first bootstrap; report on_ready/on_init_error asynchronously."""
        with LIVE_RUNTIMES_LOCK:
            LIVE_RUNTIMES.add(self)
        self.log_read_fd, self.log_write_fd = os.pipe()
        os.set_blocking(self.log_read_fd, False)
        fcntl.fcntl(self.log_read_fd, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
        fcntl.fcntl(self.log_write_fd, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
        self.reader_thread = threading.Thread(
            target=self._read_logs_loop, name=f"lambda-process-logs-{self.runtime_id[:8]}", daemon=True
        )
        self.reader_thread.start()

        generation = self._spawn()
        threading.Thread(
            target=self._report_initial_status,
            args=(generation,),
            name=f"lambda-process-init-{self.runtime_id[:8]}",
            daemon=True,
        ).start()

    def _report_initial_status(self, generation: Generation) -> None:
        generation.init_settled.wait()
        if self.stopped:
            return
        if generation.initialized:
            self.on_ready()
        else:
            payload = generation.failure_payload()
            output = self._take_logs().decode(errors="replace")
            LOG.warning(
                "Lambda bootstrap %s failed during init: %s\n%s",
                self.bootstrap,
                payload.decode(errors="replace"),
                output,
            )
            self.on_init_error(payload)
            # like AWS, the init output is logged even though no invocation ran
            if self.on_init_failure_logs:
                try:
                    error_type = json.loads(payload).get("errorType", "Runtime.Unknown")
                except (ValueError, AttributeError):
                    error_type = "Runtime.Unknown"
                if output and not output.endswith("\n"):
                    output += "\n"
                duration_ms = (time.monotonic() - self.started) * 1000
                self.on_init_failure_logs(
                    f"INIT_START Runtime: process executor\n{output}"
                    f"INIT_REPORT Init Duration: {duration_ms:.2f} ms\tPhase: init\tStatus: error\t"
                    f"Error Type: {error_type}\n"
                )

    def stop(self) -> None:
        with self.cond:
            if self.stopped:
                return
            self.stopped = True
            generation = self.generation
            pending = [i for i in (generation.current, generation.pending) if i] if generation else []
            for invocation in pending:
                invocation.done = True
                if invocation.timer:
                    invocation.timer.cancel()
            self.cond.notify_all()
        if generation:
            self._kill(generation)
        # a respawn that was under way has finished now (it sees `stopped` and kills what it started)
        with self.spawn_lock:
            if self.generation is not None and self.generation is not generation:
                self._kill(self.generation)
            if self.log_write_fd >= 0:
                os.close(self.log_write_fd)
                self.log_write_fd = -1
        with LIVE_RUNTIMES_LOCK:
            LIVE_RUNTIMES.discard(self)
        if self.scratch_dir:
            shutil.rmtree(self.scratch_dir, ignore_errors=True)

    def kill_all_now(self) -> None:
        """Last resort at interpreter exit: no locks, no HTTP."""
        generation = self.generation
        if generation and generation.proc and not generation.reaped:
            _killpg(generation.proc.pid)

    # ------------------------------------------------------------------ bootstrap processes

    def _spawn(self) -> Generation:
        """Start a new generation: a Runtime API server on a fresh port, then the bootstrap."""
        with self.cond:
            self.generation_counter += 1
            generation = Generation(self.generation_counter)
            if self.stopped:
                generation.dead = True
                generation.exit_description = "execution environment stopped"
                generation.init_settled.set()
                return generation
            self.generation = generation
        generation.server = _make_server(_RuntimeApiHandler, (self, generation))
        generation.port = generation.server.server_address[1]
        _serve_in_thread(generation.server, f"lambda-process-api-{self.runtime_id[:8]}-{generation.number}")

        env = dict(self.env)
        env["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{generation.port}"
        try:
            if not os.path.isfile(self.bootstrap):
                raise FileNotFoundError(errno.ENOENT, "no such file or directory", self.bootstrap)
            argv = [self.bootstrap]
            if self.limits:
                # the wrapper's exec would fail after the fork, as an exit status instead of this error
                if not os.access(self.bootstrap, os.X_OK):
                    raise PermissionError(errno.EACCES, "permission denied", self.bootstrap)
                name = f"{self.runtime_id[:8]}-{generation.number}"
                argv, generation.cgroups = self.limits.enter_command(name, self.memory_size, argv)
            generation.proc = subprocess.Popen(
                argv,
                cwd=self.task_root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self.log_write_fd,
                stderr=self.log_write_fd,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as e:
            reason = e.strerror or str(e)
            message = f"Error: fork/exec {self.bootstrap}: {reason.lower()}"
            error_type = "Runtime.InvalidEntrypoint"
            self._append_log(f"{message}\n{error_type}\n".encode())
            with self.cond:
                generation.dead = True
                generation.init_error = error_payload(error_type, message)
                generation.exit_description = reason
                generation.init_settled.set()
                self.cond.notify_all()
            _shutdown_server(generation.server)
            return generation

        LOG.debug(
            "Started bootstrap %s (pid %s, generation %s) for %s",
            self.bootstrap,
            generation.proc.pid,
            generation.number,
            self.runtime_id,
        )
        if self.stopped:
            self._kill(generation)
        if self.on_spawn:
            self.on_spawn(generation.proc.pid)
        threading.Thread(
            target=self._wait_for_exit,
            args=(generation,),
            name=f"lambda-process-wait-{self.runtime_id[:8]}-{generation.number}",
            daemon=True,
        ).start()
        return generation

    def _wait_for_exit(self, generation: Generation) -> None:
        proc = generation.proc
        # wait without reaping: while the exited bootstrap is a zombie its pid (= its process group id)
        # cannot be reused, so killing the group cannot hit anyone else
        try:
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass
        with generation.reap_lock:
            # grandchildren that kept the process group alive go too
            _killpg(proc.pid)
            returncode = proc.wait()
            generation.reaped = True
        Limits.remove(generation.cgroups)
        generation.exited.set()
        description = describe_exit(returncode)
        with self.cond:
            was_dead = generation.dead
            generation.dead = True
            generation.exit_description = generation.exit_description or description
            if not generation.init_settled.is_set():
                generation.init_settled.set()
            in_flight = [i for i in (generation.current, generation.pending) if i and not i.done]
            self.cond.notify_all()
        _shutdown_server(generation.server)
        if not was_dead and not self.stopped:
            LOG.debug(
                "Bootstrap of %s (generation %s) exited: %s", self.runtime_id, generation.number, description
            )
        for invocation in in_flight:
            message = f"RequestId: {invocation.request_id} Error: Runtime exited with error: {description}"
            self._finish(
                invocation,
                is_error=True,
                body=error_payload("Runtime.ExitError", message),
                log_suffix=f"{message}\nRuntime.ExitError\n",
            )

    def _kill(self, generation: Generation) -> None:
        with self.cond:
            generation.dead = True
            if not generation.exit_description:
                generation.exit_description = "signal: killed"
            generation.init_settled.set()
            self.cond.notify_all()
        if generation.proc:
            with generation.reap_lock:
                if not generation.reaped:
                    _killpg(generation.proc.pid)
            if not generation.exited.wait(5):
                LOG.warning("Bootstrap pid %s did not exit after SIGKILL", generation.proc.pid)
        if generation.server:
            _shutdown_server(generation.server)

    def _ensure_initialized(self, invocation: Invocation) -> Generation | None:
        """Return a live, initialized generation, spawning one if the last one died (suppressed init)."""
        with self.spawn_lock:
            with self.cond:
                generation = self.generation
                if self.stopped or invocation.done:
                    return None
                needs_spawn = generation is None or generation.dead
            if needs_spawn:
                LOG.debug("Respawning bootstrap for %s", self.runtime_id)
                generation = self._spawn()
            generation.init_settled.wait()
            if generation.initialized and not generation.dead:
                return generation
        self._finish(invocation, is_error=True, body=generation.failure_payload(invocation.request_id))
        return None

    # ------------------------------------------------------------------ invocations

    def submit(self, payload: dict) -> None:
        """Hand one invocation (LocalStack's invoke payload) to the bootstrap; the result goes to
        on_result. Blocks only while a bootstrap that died is started again (a suppressed init), which
        the function timeout covers."""
        invocation = Invocation(
            request_id=payload["invoke-id"],
            payload=(payload.get("payload") or "").encode(),
            invoked_arn=payload.get("invoked-function-arn", ""),
            trace_id=payload.get("trace-id", ""),
            timeout_s=self.timeout_s,
        )
        invocation.timer = threading.Timer(self.timeout_s, self._on_timeout, args=(invocation,))
        invocation.timer.daemon = True
        invocation.timer.start()
        # on the caller's thread: it only waits for the result anyway, and a thread hop costs time
        self._dispatch(invocation)

    def _dispatch(self, invocation: Invocation) -> None:
        generation = self._ensure_initialized(invocation)
        if generation is None:
            return
        with self.cond:
            if invocation.done:
                return
            if generation.dead:
                dead = True
            else:
                dead = False
                invocation.generation = generation
                generation.pending = invocation
                self.cond.notify_all()
        if dead:
            message = f"RequestId: {invocation.request_id} Error: Runtime exited with error: {generation.exit_description}"
            self._finish(invocation, is_error=True, body=error_payload("Runtime.ExitError", message))

    def _on_timeout(self, invocation: Invocation) -> None:
        with self.cond:
            if invocation.done:
                return
            generation = invocation.generation or self.generation
        message = f"RequestId: {invocation.request_id} Error: Task timed out after {invocation.timeout_s:.2f} seconds"
        # _finish marks the invocation done before it kills the bootstrap (before_logs), so the exit watcher
        # does not report the kill as a crash; and if a response won the race, nothing is killed at all
        self._finish(
            invocation,
            is_error=True,
            body=error_payload("Sandbox.Timedout", message),
            log_suffix=f"{message}\n",
            status="timeout",
            before_logs=lambda: generation and self._kill(generation),
        )

    def next_invocation(self, generation: Generation) -> Invocation | None:
        """GET /next: block until there is work for *this* generation, or it died."""
        with self.cond:
            if not generation.initialized:
                generation.initialized = True
                generation.init_settled.set()
            while True:
                if self.stopped or generation.dead or self.generation is not generation:
                    return None
                invocation = generation.pending
                if invocation is not None:
                    generation.pending = None
                    if invocation.done:
                        continue
                    generation.current = invocation
                    return invocation
                self.cond.wait()

    def runtime_result(
        self, generation: Generation, request_id: str, is_error: bool, body: bytes
    ) -> HTTPStatus:
        with self.cond:
            invocation = generation.current
            if invocation is None or invocation.request_id != request_id or invocation.done:
                return HTTPStatus.BAD_REQUEST
        if not is_error and len(body) > self.max_payload_bytes:
            message = (
                f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload size "
                f"({self.max_payload_bytes} bytes)."
            )
            self._finish(
                invocation, is_error=True, body=error_payload("Function.ResponseSizeTooLarge", message)
            )
            return HTTPStatus.REQUEST_ENTITY_TOO_LARGE
        self._finish(invocation, is_error=is_error, body=body)
        return HTTPStatus.ACCEPTED

    def init_error(self, generation: Generation, body: bytes) -> None:
        """POST /init/error: the bootstrap gave up during init; it is killed like on AWS."""
        with self.cond:
            generation.init_error = body or error_payload("Runtime.Unknown", "init error")
            generation.init_settled.set()
        threading.Thread(target=self._kill, args=(generation,), daemon=True).start()

    def _finish(
        self,
        invocation: Invocation,
        *,
        is_error: bool,
        body: bytes,
        log_suffix: str = "",
        status: str = "",
        before_logs: Callable[[], object] | None = None,
    ) -> None:
        """Report one invocation's logs and result to LocalStack, exactly once."""
        with self.cond:
            if invocation.done:
                return
            invocation.done = True
            generation = invocation.generation
            if generation is not None:
                if generation.current is invocation:
                    generation.current = None
                if generation.pending is invocation:
                    generation.pending = None
            stopped = self.stopped
        if invocation.timer:
            invocation.timer.cancel()
        if before_logs:
            before_logs()
        if stopped:
            return
        duration_ms = (time.monotonic() - invocation.accepted) * 1000
        logs = self._format_logs(invocation, duration_ms, log_suffix, status, generation)
        try:
            self.on_result(invocation.request_id, is_error, body, logs)
        except Exception:
            LOG.exception("Could not report the result of invocation %s", invocation.request_id)

    def _format_logs(
        self,
        invocation: Invocation,
        duration_ms: float,
        suffix: str,
        status: str,
        generation: Generation | None,
    ) -> str:
        output = self._take_logs().decode(errors="replace")
        if output and not output.endswith("\n"):
            output += "\n"
        max_memory = ""
        if generation and generation.proc and not generation.dead:
            peak_mb = peak_rss_mb(generation.proc.pid)
            if peak_mb is not None:
                max_memory = f"\tMax Memory Used: {peak_mb} MB"
        rid = invocation.request_id
        report = (
            f"REPORT RequestId: {rid}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {billed_duration_ms(duration_ms)} ms\tMemory Size: {self.memory_size} MB{max_memory}"
        )
        if status:
            report += f"\tStatus: {status}"
        return (
            f"START RequestId: {rid} Version: {self.function_version}\n"
            f"{output}{suffix}"
            f"END RequestId: {rid}\n"
            f"{report}\n"
        )

    # ------------------------------------------------------------------ logs

    def _read_logs_loop(self) -> None:
        fd = self.log_read_fd
        while not self.log_eof:
            try:
                select.select([fd], [], [], 0.5)
            except (OSError, ValueError):
                break
            self._pump_logs()
            if self.stopped and self.log_write_fd < 0:
                # the bootstraps are dead; whatever a stray grandchild still writes is of no interest
                break
        with self.log_lock:
            self.log_eof = True
            self.log_read_fd = -1
            try:
                os.close(fd)
            except OSError:
                pass

    def _pump_logs(self) -> None:
        """Move everything readable from the pipe into the buffer (non-blocking, under the log lock)."""
        with self.log_lock:
            while self.log_read_fd >= 0 and not self.log_eof:
                try:
                    data = os.read(self.log_read_fd, 65536)
                except BlockingIOError:
                    return
                except OSError:
                    self.log_eof = True
                    return
                if not data:
                    self.log_eof = True
                    return
                self._append_log_locked(data)

    def _append_log(self, data: bytes) -> None:
        with self.log_lock:
            self._append_log_locked(data)

    def _append_log_locked(self, data: bytes) -> None:
        room = MAX_LOG_BYTES_PER_INVOCATION - len(self.log_buffer)
        if room > 0:
            self.log_buffer += data[:room]
        self.log_dropped += max(0, len(data) - max(room, 0))
        self.log_tail += data
        if len(self.log_tail) > MAX_LOG_TAIL_BYTES:
            del self.log_tail[: len(self.log_tail) - MAX_LOG_TAIL_BYTES]
        if LOG.isEnabledFor(logging.DEBUG):
            for line in data.decode(errors="replace").splitlines():
                LOG.debug("[lambda %s] %s", self.runtime_id[:8], line)

    def _take_logs(self) -> bytes:
        # whatever the bootstrap wrote before it called us is already in the pipe: drain it first
        self._pump_logs()
        with self.log_lock:
            data = bytes(self.log_buffer)
            self.log_buffer.clear()
            if self.log_dropped:
                data += f"\n[process executor: {self.log_dropped} bytes of output dropped]\n".encode()
                self.log_dropped = 0
        return data

    def get_logs(self) -> str:
        with self.log_lock:
            return bytes(self.log_tail).decode(errors="replace")


# ---------------------------------------------------------------------- HTTP plumbing


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        LOG.debug("Error while handling a request from %s", client_address, exc_info=True)


def _make_server(handler_class, context) -> ThreadingHTTPServer:
    server = _QuietServer(("127.0.0.1", 0), handler_class)
    server.context = context
    return server


def _serve_in_thread(server: ThreadingHTTPServer, name: str) -> None:
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name=name, daemon=True
    ).start()


def _shutdown_server(server: ThreadingHTTPServer | None) -> None:
    if server is None or getattr(server, "_closed", False):
        return
    server._closed = True

    def close():
        server.shutdown()
        server.server_close()

    # shutdown() blocks until serve_forever returns: never do that on a handler thread
    threading.Thread(target=close, daemon=True).start()


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "localstack-process-executor"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002
        LOG.debug("%s %s", self.address_string(), format % args)

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until the empty line
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if body and "Content-Type" not in (headers or {}):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)
        self.wfile.flush()

    def reply_json(self, status: int, document: dict) -> None:
        self.reply(status, json.dumps(document).encode())


class _RuntimeApiHandler(_Handler):
    """The function's side: the Lambda Runtime API, for one generation only."""

    def _context(self) -> tuple[ProcessRuntime, Generation]:
        return self.server.context

    def do_GET(self):  # noqa: N802
        runtime, generation = self._context()
        if self.path.rstrip("/") != f"{RUNTIME_API_PREFIX}/invocation/next":
            self.reply_json(404, {"errorMessage": "not found", "errorType": "NotFound"})
            return
        invocation = runtime.next_invocation(generation)
        if invocation is None:
            # this generation is over (killed, exited or stopped): its bootstrap gets nothing more
            self.reply_json(
                410, {"errorMessage": "execution environment is shutting down", "errorType": "Gone"}
            )
            self.close_connection = True
            return
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": invocation.invoked_arn,
        }
        if invocation.trace_id:
            headers["Lambda-Runtime-Trace-Id"] = invocation.trace_id
        try:
            self.reply(200, invocation.payload, headers)
        except OSError:
            # the bootstrap went away mid-reply: the exit watcher reports it
            LOG.debug("Could not deliver invocation %s", invocation.request_id)

    def do_POST(self):  # noqa: N802
        runtime, generation = self._context()
        body = self.read_body()
        path = self.path.rstrip("/")
        if path == f"{RUNTIME_API_PREFIX}/init/error":
            runtime.init_error(generation, _normalize_error(body, self.headers))
            self.reply_json(202, {"status": "OK"})
            return
        prefix = f"{RUNTIME_API_PREFIX}/invocation/"
        if path.startswith(prefix):
            request_id, _, kind = path[len(prefix) :].partition("/")
            if kind in ("response", "error"):
                is_error = kind == "error"
                if is_error:
                    body = _normalize_error(body, self.headers)
                status = runtime.runtime_result(generation, request_id, is_error, body)
                if status == HTTPStatus.ACCEPTED:
                    self.reply_json(202, {"status": "OK"})
                elif status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
                    self.reply_json(
                        413, {"errorMessage": "payload too large", "errorType": "RequestEntityTooLarge"}
                    )
                else:
                    self.reply_json(
                        400,
                        {
                            "errorMessage": f"Invalid request ID: {request_id}",
                            "errorType": "InvalidRequestID",
                        },
                    )
                return
        self.reply_json(404, {"errorMessage": "not found", "errorType": "NotFound"})


def _normalize_error(body: bytes, headers) -> bytes:
    """Error bodies go to the caller as they are when they are JSON; anything else is wrapped."""
    error_type = headers.get("Lambda-Runtime-Function-Error-Type") or "Runtime.Unknown"
    try:
        document = json.loads(body) if body else None
    except ValueError:
        document = None
    if isinstance(document, dict):
        return body
    return error_payload(error_type, body.decode(errors="replace") if body else error_type)
