"""Supervising the processes of a resolved launch: start, label output, stop, never orphan.

Every process gets the environment of dave_core.rosenv.ros_env() plus PYTHONUNBUFFERED=1
(so Python children flush each line), stdin from /dev/null, and its own process group, so
signals reach whatever it starts and a terminal's Ctrl-C reaches only `dave launch`,
which then stops everything in order. The kernel kills each process if the thread that
started it dies (PR_SET_PDEATHSIG); that thread is the runner's supervisor, which lives
until the last process has exited. A small watchdog process (dave_core.launch.watchdog)
kills the process groups, grandchildren included, if the runner dies without stopping
them, so even `kill -9` of dave launch orphans nothing.

Stopping is ros2 launch's: SIGINT to every process group, SIGTERM to those still running
after sigterm_timeout, SIGKILL after sigkill_timeout more. When a process exits, what is
left of its process group is killed: a launch owns everything its processes started.

    with LaunchRunner(load_launch_file('launch/sim.launch.yaml'), sink=print) as runner:
        code = runner.wait(timeout=60)
"""
from __future__ import annotations

import ctypes
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dave_core.launch import watchdog
from dave_core.launch.description import LaunchDescription, ProcessDescription
from dave_core.launch.errors import LaunchError
from dave_core.rosenv import ros_env

_LOG = logging.getLogger(__name__)
_OUTPUT_LOG = logging.getLogger('dave_core.launch.output')
_MAX_LINE_BYTES = 1 << 16  # a line longer than this is passed on in pieces
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass(frozen=True)
class OutputLine:
    """One line a process wrote; str() gives the `[label] text` form shown to users."""

    process: str
    stream: str  # 'stdout' or 'stderr'
    text: str

    def __str__(self) -> str:
        return f'[{self.process}] {self.text}'


@dataclass(frozen=True)
class ProcessExit:
    label: str
    pid: int
    returncode: int  # negative: killed by that signal, as in subprocess


@dataclass(frozen=True)
class RunnerConfig:
    """How processes are stopped, and where `output: log` lines go."""

    sigterm_timeout: float = 5.0  # after SIGINT; ros2 launch's default
    sigkill_timeout: float = 5.0  # after SIGTERM; ros2 launch's default
    log_dir: Path | None = None  # launch.log for `output: log|both`; None: not written
    domain_id: int | None = None  # ROS_DOMAIN_ID for the processes; None: inherited
    force_localhost: bool = False  # see dave_core.rosenv.ros_env
    poll_interval: float = 0.05  # how often exits and stop deadlines are checked
    drain_timeout: float = 1.0  # wait for pipes held open by escaped grandchildren

    def __post_init__(self) -> None:
        for name in ('sigterm_timeout', 'sigkill_timeout', 'drain_timeout'):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f'RunnerConfig.{name} must be >= 0, got {getattr(self, name)}')
        if not self.poll_interval > 0.0:
            raise ValueError(f'RunnerConfig.poll_interval must be > 0, got {self.poll_interval}')


def exit_status(returncode: int) -> int:
    """Shell convention: a death by signal N becomes 128 + N."""
    return returncode if returncode >= 0 else 128 - returncode


def _log_sink(line: OutputLine) -> None:
    _OUTPUT_LOG.info('%s', line)


class _Child:
    """A started process and its shutdown progress."""

    def __init__(self, spec: ProcessDescription, popen: subprocess.Popen,
                 config: RunnerConfig) -> None:
        self.spec = spec
        self.popen = popen
        self.pid = popen.pid
        self.sigterm_timeout = (config.sigterm_timeout if spec.sigterm_timeout is None
                                else spec.sigterm_timeout)
        self.sigkill_timeout = (config.sigkill_timeout if spec.sigkill_timeout is None
                                else spec.sigkill_timeout)
        self.returncode: int | None = None
        self.last_signal: signal.Signals | None = None
        self.deadline: float | None = None  # when to escalate past last_signal
        self.partial = {'stdout': bytearray(), 'stderr': bytearray()}

    def signal(self, signum: signal.Signals) -> None:
        """Signal the process group; for shutdown steps, remembered for escalation."""
        self.last_signal = signum
        self.signal_group(signum)

    def signal_group(self, signum: signal.Signals) -> None:
        # Only called before this thread reaps the child: alive or a zombie, its process
        # group id cannot have been reused.
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            # It moved to another group; the pid is still ours until reaped.
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass


class LaunchRunner:
    """Runs the processes of a LaunchDescription under supervision.

    `sink` receives every OutputLine meant for the screen, from the supervisor thread
    (default: the `dave_core.launch.output` logger). `environ` is the base environment
    (default os.environ), passed through `ros_env`.
    """

    def __init__(self, description: LaunchDescription, config: RunnerConfig | None = None, *,
                 sink: Callable[[OutputLine], None] | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.description = description
        self.config = config or RunnerConfig()
        self._sink = sink or _log_sink
        self._environ = environ
        self._children: list[_Child] = []
        self._exits: list[ProcessExit] = []
        self._thread: threading.Thread | None = None
        self._spawned = threading.Event()
        self._done = threading.Event()
        self._spawn_error: LaunchError | None = None
        self._stop_reason: str | None = None  # set by request_stop, from any thread
        self._kill_requested = False
        self._shutting_down = False
        self._result: int | None = None
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        # Closed only with the runner, so a late request_stop never writes to a reused fd.
        weakref.finalize(self, _close_fds, self._wake_read, self._wake_write)
        self._log_file: IO[str] | None = None
        self._sink_failed = False
        self._watchdog: subprocess.Popen | None = None

    # --- public API ------------------------------------------------------------------

    def start(self) -> LaunchRunner:
        """Start every process; raises LaunchError (nothing left running) if one cannot."""
        if self._thread is not None:
            raise RuntimeError('LaunchRunner.start() was already called')
        self._thread = threading.Thread(target=self._main, name='dave-launch', daemon=True)
        self._thread.start()
        self._spawned.wait()
        if self._spawn_error is not None:
            self._thread.join()
            raise self._spawn_error
        return self

    def request_stop(self, reason: str = 'stop requested') -> None:
        """Begin the orderly shutdown; returns at once. Safe in a signal handler."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._wake()

    def kill(self) -> None:
        """SIGKILL every process now (a second Ctrl-C); returns at once."""
        self._kill_requested = True
        self.request_stop('kill requested')

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code once every process has exited, or None after `timeout` seconds.

        0 after a requested stop or when all processes exited with 0; the exit status
        of a required (`on_exit: shutdown`) process whose exit ended the launch; 1 when
        all processes ended by themselves and one of them failed.
        """
        if self._thread is None:
            raise RuntimeError('LaunchRunner.wait() before start()')
        return self._result if self._done.wait(timeout) else None

    def stop(self, timeout: float | None = None) -> int | None:
        """request_stop() then wait(timeout)."""
        self.request_stop()
        return self.wait(timeout)

    @property
    def pids(self) -> dict[str, int]:
        return {child.spec.label: child.pid for child in self._children}

    @property
    def exits(self) -> list[ProcessExit]:
        return list(self._exits)

    def __enter__(self) -> LaunchRunner:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        if self._thread is not None:
            self.stop()

    # --- supervisor thread -----------------------------------------------------------

    def _wake(self) -> None:
        try:
            os.write(self._wake_write, b'x')
        except (BlockingIOError, OSError):
            pass  # the pipe is full: the supervisor is already being woken

    def _main(self) -> None:
        try:
            self._spawn_all()
        except Exception as error:
            self._spawn_error = (error if isinstance(error, LaunchError)
                                 else LaunchError(f'cannot start the launch: {error}'))
            self._kill_requested = True
            self._stop_reason = 'a process could not be started'
        finally:
            self._spawned.set()
        try:
            self._supervise()
        except BaseException:
            _LOG.exception('[launch]: supervisor failed; killing every process')
            for child in self._running():
                child.signal(signal.SIGKILL)
                child.returncode = child.popen.wait()
                self._tell_watchdog(f'-{child.pid}')
            self._result = 1
        finally:
            self._close()
            self._done.set()

    def _spawn_all(self) -> None:
        base = ros_env(self._environ, domain_id=self.config.domain_id,
                       force_localhost=self.config.force_localhost)
        base['PYTHONUNBUFFERED'] = '1'
        preexec = _child_setup()
        self._watchdog = subprocess.Popen(
            [sys.executable, watchdog.__file__], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        for spec in self.description.processes:
            env = dict(base)
            env.update(spec.env)
            try:
                popen = subprocess.Popen(
                    spec.cmd, cwd=spec.cwd, env=env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=preexec,
                    close_fds=True)
            except (OSError, subprocess.SubprocessError) as error:
                detail = getattr(error, 'strerror', None) or str(error)
                raise LaunchError(f'{spec.origin}: cannot start {spec.cmd[0]}: {detail}') from None
            child = _Child(spec, popen, self.config)
            self._children.append(child)
            self._tell_watchdog(f'+{child.pid}')
            self._selector.register(popen.stdout, selectors.EVENT_READ, (child, 'stdout'))
            self._selector.register(popen.stderr, selectors.EVENT_READ, (child, 'stderr'))
            _LOG.info('[%s]: process started with pid [%d]', spec.label, child.pid)

    def _tell_watchdog(self, message: str) -> None:
        if self._watchdog is None:
            return
        try:
            self._watchdog.stdin.write(f'{message}\n'.encode())
            self._watchdog.stdin.flush()
        except OSError:
            _LOG.warning('[launch]: the watchdog process is gone; a killed dave launch may '
                         'leave processes behind')

    def _running(self) -> list[_Child]:
        return [child for child in self._children if child.returncode is None]

    def _supervise(self) -> None:
        drain_deadline = None
        while True:
            for key, _ in self._selector.select(self.config.poll_interval):
                if key.data is None:
                    os.read(self._wake_read, 4096)
                else:
                    self._read(key.fileobj, *key.data)
            now = time.monotonic()
            self._reap()
            self._advance_shutdown(now)
            if self._running():
                continue
            if len(self._selector.get_map()) <= 1:
                break
            if drain_deadline is None:
                drain_deadline = now + self.config.drain_timeout
            elif now >= drain_deadline:
                break
        if self._result is None:
            failed = any(exit.returncode != 0 for exit in self._exits)
            self._result = 1 if failed and self._stop_reason is None else 0
            if self._stop_reason is None:
                _LOG.info('[launch]: all processes have exited')

    def _read(self, pipe: IO[bytes], child: _Child, stream: str) -> None:
        try:
            data = os.read(pipe.fileno(), 1 << 16)
        except OSError:
            data = b''
        buffer = child.partial[stream]
        if not data:
            self._selector.unregister(pipe)
            pipe.close()
            if buffer:
                self._emit(child, stream, bytes(buffer))
                buffer.clear()
            return
        buffer += data
        while (end := buffer.find(b'\n')) >= 0:
            self._emit(child, stream, bytes(buffer[:end]))
            del buffer[:end + 1]
        if len(buffer) > _MAX_LINE_BYTES:
            self._emit(child, stream, bytes(buffer))
            buffer.clear()

    def _emit(self, child: _Child, stream: str, raw: bytes) -> None:
        line = OutputLine(child.spec.label, stream, raw.decode('utf-8', 'replace').rstrip('\r'))
        output = child.spec.output
        if output in ('log', 'both') and self.config.log_dir is not None:
            self._write_log(line)
        # ros2 launch's `log` output still shows stderr on the screen.
        if output in ('screen', 'both') or stream == 'stderr':
            try:
                self._sink(line)
            except Exception:  # a broken sink must not stop supervision
                if not self._sink_failed:
                    self._sink_failed = True
                    _LOG.exception('[launch]: the output sink failed; later failures are silent')

    def _write_log(self, line: OutputLine) -> None:
        if self._log_file is None:
            self.config.log_dir.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.config.log_dir / 'launch.log', 'a', encoding='utf-8',
                                  buffering=1)
        self._log_file.write(f'{time.time():.7f} [{line.process}] {line.text}\n')

    def _reap(self) -> None:
        for child in self._running():
            if not _has_exited(child.pid):
                continue
            # The exited leader still reserves its group id: kill what it left behind.
            child.signal_group(signal.SIGKILL)
            child.returncode = child.popen.wait()
            self._tell_watchdog(f'-{child.pid}')
            self._exits.append(ProcessExit(child.spec.label, child.pid, child.returncode))
            self._report_exit(child)

    def _report_exit(self, child: _Child) -> None:
        code = child.returncode
        if code == 0:
            _LOG.info('[%s]: process has finished cleanly [pid %d]', child.spec.label, child.pid)
        elif self._shutting_down and child.last_signal is not None:
            _LOG.info('[%s]: process has stopped [pid %d, exit code %d]', child.spec.label,
                      child.pid, code)
        else:
            _LOG.error("[%s]: process has died [pid %d, exit code %d, cmd '%s']",
                       child.spec.label, child.pid, code, child.spec.command_line())
        if child.spec.required and self._stop_reason is None:
            self._result = exit_status(code)
            self._stop_reason = (f'required process [{child.spec.label}] exited with code '
                                 f'{code}')

    def _advance_shutdown(self, now: float) -> None:
        if self._stop_reason is not None and not self._shutting_down:
            self._shutting_down = True
            running = self._running()
            if running:
                _LOG.info('[launch]: %s, stopping %d process(es)', self._stop_reason,
                          len(running))
            for child in running:
                child.signal(signal.SIGINT)
                child.deadline = now + child.sigterm_timeout
        if self._kill_requested:
            for child in self._running():
                if child.last_signal != signal.SIGKILL:
                    child.signal(signal.SIGKILL)
            return
        for child in self._running():
            if child.deadline is None or now < child.deadline:
                continue
            if child.last_signal == signal.SIGINT:
                _LOG.error("[%s]: failed to terminate %.1f s after SIGINT, escalating to SIGTERM",
                           child.spec.label, child.sigterm_timeout)
                child.signal(signal.SIGTERM)
                child.deadline = now + child.sigkill_timeout
            elif child.last_signal == signal.SIGTERM:
                _LOG.error("[%s]: failed to terminate %.1f s after SIGTERM, escalating to SIGKILL",
                           child.spec.label, child.sigkill_timeout)
                child.signal(signal.SIGKILL)
                child.deadline = None

    def _close(self) -> None:
        for child in self._children:
            for stream, pipe in (('stdout', child.popen.stdout), ('stderr', child.popen.stderr)):
                if pipe is not None and not pipe.closed:
                    if child.partial[stream]:
                        self._emit(child, stream, bytes(child.partial[stream]))
                        child.partial[stream].clear()
                    pipe.close()
        self._selector.close()
        if self._watchdog is not None:
            try:
                self._watchdog.stdin.close()
                self._watchdog.wait(timeout=5.0)
            except (OSError, subprocess.TimeoutExpired):
                self._watchdog.kill()
                self._watchdog.wait()
        if self._log_file is not None:
            self._log_file.close()


def _close_fds(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


def _has_exited(pid: int) -> bool:
    """True once `pid` has exited, without reaping it (WNOWAIT keeps the zombie)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _child_setup() -> Callable[[], None]:
    """The preexec_fn of every process: its own process group, and death with its parent.

    PR_SET_PDEATHSIG makes the kernel SIGKILL the child when the thread that started it
    dies. SIGKILL rather than SIGTERM: this only fires when dave launch itself was killed
    without a chance to stop anything, and a process ignoring SIGTERM must not survive
    that. Where prctl does not exist (not Linux) only the watchdog remains.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                          ctypes.c_ulong]
    except (OSError, AttributeError):
        _LOG.warning('[launch]: prctl unavailable; only the watchdog guards against orphans')
        prctl = None
    parent = os.getpid()
    kill_signal = int(signal.SIGKILL)

    def preexec() -> None:
        os.setpgid(0, 0)
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, kill_signal, 0, 0, 0)
            if os.getppid() != parent:  # the parent died before prctl took effect
                os.kill(os.getpid(), kill_signal)

    return preexec
