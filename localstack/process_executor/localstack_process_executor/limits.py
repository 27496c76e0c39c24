"""Lambda's limits on a bootstrap process, where the machine allows them (``LAMBDA_PROCESS_LIMITS=1``).

Lambda gives a function its configured memory as a hard limit and CPU in proportion to it: one vCPU at
1,769 MB (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html). Here each bootstrap
process gets a cgroup v1 ``memory`` cgroup with ``memory.limit_in_bytes`` = the memory size (and no swap
on top) and a ``cpu`` cgroup with ``cpu.cfs_quota_us`` = 100,000 × memory / 1,769 per 100,000 µs period.
A function that outgrows its memory is killed by the kernel's OOM killer, which the caller sees as on
AWS: ``Runtime exited with error: signal: killed`` (``Runtime.ExitError``).

That needs both controllers mounted as cgroup v1 and writable (as root); elsewhere ``detect`` says why
not and the bootstraps run unconstrained.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

LOG = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
# One directory per LocalStack process under each controller; one per bootstrap process in it.
PARENT = "localstack-process-executor"
PERIOD_US = 100_000
FULL_CPU_MB = 1_769
# The kernel's smallest quota, 1 ms
MIN_QUOTA_US = 1_000


def cpu_quota_us(memory_mb: int) -> int:
    """Lambda's CPU share for ``memory_mb`` as a CFS quota per 100 ms period (above one CPU past 1,769 MB)."""
    return max(MIN_QUOTA_US, PERIOD_US * memory_mb // FULL_CPU_MB)


def _own_cgroup(controller: str) -> str:
    """This process's cgroup in the v1 hierarchy of ``controller`` (``/`` when it has none)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return "/"


class Limits:
    """Makes, for each bootstrap process, the cgroups that hold it to its memory size and CPU share."""

    def __init__(self, cpu_parent: Path, memory_parent: Path):
        self.cpu_parent = cpu_parent
        self.memory_parent = memory_parent

    @classmethod
    def detect(cls) -> tuple[Limits | None, str]:
        """The limits, or None and why the machine does not allow them."""
        parents = []
        for controller in ("cpu", "memory"):
            mount = CGROUP_ROOT / controller
            if not (mount / "cgroup.procs").is_file():
                cls.remove(parents)
                return None, f"no cgroup v1 '{controller}' controller at {mount}"
            # below our own cgroup, so that what the sandbox we run in counts counts the functions too
            own = mount / _own_cgroup(controller).lstrip("/")
            for stale in own.glob(f"{PARENT}-*"):
                # of a LocalStack that ended without removing its own (empty ones go, busy ones stay)
                pid = stale.name.rsplit("-", 1)[1]
                if not Path("/proc", pid).exists():
                    cls.remove([*(d for d in stale.iterdir() if d.is_dir()), stale])
            parent = own / f"{PARENT}-{os.getpid()}"
            try:
                parent.mkdir(exist_ok=True)
            except OSError as e:
                cls.remove(parents)
                return None, f"cannot make a cgroup under {mount}: {e.strerror}"
            parents.append(parent)
        return cls(*parents), ""

    def enter_command(self, name: str, memory_mb: int, argv: list[str]) -> tuple[list[str], list[Path]]:
        """The cgroups for one process of a function of ``memory_mb``, made now, and ``argv`` wrapped so
        that the process enters them before the program starts (``sh`` moves itself, then ``exec``s)."""
        cpu = self.cpu_parent / name
        memory = self.memory_parent / name
        for directory in (cpu, memory):
            directory.mkdir(parents=True, exist_ok=True)
        (cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (cpu / "cpu.cfs_quota_us").write_text(str(cpu_quota_us(memory_mb)))
        limit = str(memory_mb * 1024 * 1024)
        (memory / "memory.limit_in_bytes").write_text(limit)
        swap = memory / "memory.memsw.limit_in_bytes"
        if swap.exists():
            # memory + swap: the same, so that an oversized function is killed, not swapped
            swap.write_text(limit)
        wrapped = [
            "/bin/sh",
            "-c",
            'echo $$ > "$0/cgroup.procs" && echo $$ > "$1/cgroup.procs" && shift && exec "$@"',
            str(cpu),
            str(memory),
            *argv,
        ]
        return wrapped, [cpu, memory]

    @staticmethod
    def remove(directories: list[Path]) -> None:
        """Removes a process's cgroups once it and everything it started are gone."""
        for directory in directories:
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass
            except OSError as e:
                # EBUSY: a process is still in it
                level = logging.DEBUG if e.errno == errno.EBUSY else logging.WARNING
                LOG.log(level, "could not remove cgroup %s: %s", directory, e.strerror)

    def close(self) -> None:
        """Removes the per-LocalStack parents (at exit, when every process is gone)."""
        self.remove([self.cpu_parent, self.memory_parent])
