"""Run local commands with errors that say which command failed and what it printed."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence

from clipper_deploy.errors import ClipperDeployError


class CommandError(ClipperDeployError, RuntimeError):
    """A local command exited non-zero; carries the argv, exit code and output."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        detail = (stderr or stdout).strip()
        tail = "\n".join(detail.splitlines()[-15:])
        super().__init__(
            f"command failed (exit {returncode}): {shlex.join(self.argv)}"
            + (f"\n{tail}" if tail else "")
        )


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    input: str | bytes | None = None,
    timeout: float | None = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (no shell), capture text output; raise :class:`CommandError` on failure."""
    data = input.decode() if isinstance(input, bytes) else input
    try:
        proc = subprocess.run(
            list(argv), input=data, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise CommandError(argv, 127, "", f"{argv[0]}: command not found") from exc
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stdout, proc.stderr)
    return proc


def succeeds(argv: Sequence[str], timeout: float | None = 30) -> bool:
    """True when ``argv`` exits 0 (output discarded); False also when it cannot be run."""
    try:
        return (
            subprocess.run(
                list(argv),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            ).returncode
            == 0
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
