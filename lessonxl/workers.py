"""Make several workbooks at once, each in its own process: `lessonxl generate` on every CPU core.

A fork server (a Python running `main`) imports the lessons (and torch) once, computes nothing,
and forks one child per workbook, at most `jobs` at a time; each child computes its workbook's bytes
(`Lesson.make`) and sends them back, and the caller saves them.

Why not the obvious ways:
- forking the caller could hang the child: a process forked after torch has computed on several
  threads (a notebook's kernel has) can deadlock in GNU OpenMP, which is not fork-safe;
- spawning each worker afresh imports torch again in each (about a second);
- multiprocessing's own fork server runs the caller's main script again in every worker (a script
  that calls `lessonxl.generate()` without an `if __name__ == "__main__":` guard would fail).

The caller starts the server before it imports torch itself, so that the two imports overlap. The server
and its children are one process group, which `Server.stop` ends as one: after Ctrl-C or an error
nothing is left running, and no file is half written. A caller that dies without stopping it (kill -9)
closes the server's stdin, and the server then ends the group itself.

The results channel (the server's stdout) carries, for each task in order, the length of a pickled
(made, error, where) and then those bytes, so that a worker that died halfway cannot garble the next.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import selectors
import signal
import struct
import subprocess
import sys
import traceback
from typing import BinaryIO, Iterator, Sequence

from .errors import LessonxlError

_LENGTH = struct.Struct(">Q")


def cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_jobs() -> int:
    """How many workbooks to make at once: one per core that is idle now (the load average of the last
    minute taken off), at least 1. Measured on 2 cores: at once 3.9 s against 5.0 s one after another
    on a quiet machine, 15.8 s against 11.7 s on a loaded one, where the workers only compete."""
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average (Windows): every core counts as idle
        busy = 0.0
    return max(1, cores() - int(busy + 0.5))


#: Files a second LibreOffice must have to itself before `verify` starts one: its start costs 2 to 4 s of CPU.
FILES_PER_ENGINE = 4


def verify_jobs(files: int) -> int:
    """How many LibreOffice processes `verify` runs at once for `files` files: one per idle core
    (`default_jobs`), at most one per FILES_PER_ENGINE files."""
    return max(1, min(default_jobs(), files // FILES_PER_ENGINE))


def available() -> bool:
    """Whether worker processes can be forked safely here: Linux and the other POSIX systems, not macOS
    (a process forked after system frameworks were loaded may crash there) nor Windows (no fork). Where
    they cannot, the workbooks are made one after another in the calling process."""
    return hasattr(os, "fork") and sys.platform != "darwin"


class WorkerTraceback(Exception):
    """The cause of an error a worker sent: where in the worker it was raised, as a traceback's text."""


class Server:
    """The fork server, started at once (importing lessonxl from where this process does); `make_all`
    gives it the work."""

    def __init__(self):
        program = f"import sys; sys.path[:] = {sys.path!r}; from lessonxl.workers import main; main()"
        self._process = subprocess.Popen([sys.executable, "-c", program], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, start_new_session=True)

    @property
    def pid(self) -> int:
        """The server's process id, which is also its process group's and session's."""
        return self._process.pid

    def make_all(self, tasks: Sequence[tuple[str, dict]], seed: int, device: str, jobs: int) -> Iterator:
        """Start making each task's `Lesson.make(seed, device, **options)` (a task: a lesson's name and its
        options), `jobs` at a time; the results, in the tasks' order, as they come."""
        try:
            pickle.dump((list(tasks), seed, device, jobs), self._process.stdin)
            self._process.stdin.flush()  # and it stays open: its end tells the server this process has gone
        except BrokenPipeError:
            pass  # the server has gone: the results say so
        return self._results(len(tasks))

    def _results(self, count: int) -> Iterator:
        try:
            for _ in range(count):
                made, error, where = pickle.loads(self._read(_LENGTH.unpack(self._read(_LENGTH.size))[0]))
                if isinstance(error, LessonxlError):
                    raise error
                if error is not None:
                    raise error from WorkerTraceback(where)
                yield made
        except EOFError:
            raise LessonxlError(f"the worker processes stopped (exit status {self._process.wait()}); "
                                "--jobs 1 makes the workbooks in this process") from None

    def _read(self, size: int) -> bytes:
        data = self._process.stdout.read(size)
        if len(data) < size:
            raise EOFError
        return data

    def stop(self) -> None:
        """End the server and every child it forked, unless they have ended already (the server is not
        reaped before, so its group's id cannot have been taken by another)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            stream.close()


def serve(tasks_in: BinaryIO, results_out: BinaryIO) -> None:
    """The server: read the tasks, fork a child for each (`jobs` at most at once), write each child's
    result in the tasks' order; end the whole group if `tasks_in` ends (the caller has gone)."""
    tasks, seed, device, jobs = pickle.load(tasks_in)
    waiting, results, running = list(enumerate(tasks)), {}, selectors.DefaultSelector()
    running.register(tasks_in.fileno(), selectors.EVENT_READ, None)
    for _ in range(min(jobs, len(waiting))):
        _fork(*waiting.pop(0), seed, device, running, results_out)
    sent = 0
    while sent < len(tasks):
        for key, _ in running.select():
            if key.data is None:  # the caller's end of stdin: closed, since it sends nothing more
                os.killpg(0, signal.SIGKILL)
            number, pid, chunks = key.data
            chunk = os.read(key.fd, 1 << 20)
            if chunk:
                chunks.append(chunk)
                continue
            running.unregister(key.fd)
            os.close(key.fd)
            status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            results[number] = b"".join(chunks) if status == 0 else pickle.dumps(
                (None, RuntimeError(f"the worker that made {tasks[number][0]} stopped (exit status {status})"), ""))
            if waiting:
                _fork(*waiting.pop(0), seed, device, running, results_out)
        while sent in results:
            result = results.pop(sent)
            results_out.write(_LENGTH.pack(len(result)) + result)
            results_out.flush()
            sent += 1


def _fork(number: int, task: tuple[str, dict], seed: int, device: str, running: selectors.BaseSelector,
          results_out: BinaryIO) -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: whatever happens, it ends here, with 0 only when its result is sent whole
        status = 1
        try:
            running.close()
            os.close(read_end)
            os.close(results_out.fileno())  # the caller sees the results end when the server goes
            with os.fdopen(write_end, "wb") as out:
                out.write(_make(*task, seed, device))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    running.register(read_end, selectors.EVENT_READ, (number, pid, []))


def _make(name: str, options: dict, seed: int, device: str) -> bytes:
    """A child's result, pickled: the workbook `Lesson.make` made, or the error and where it was raised."""
    import torch

    from .registry import by_name

    try:
        return pickle.dumps((by_name(name).make(seed, torch.device(device), **options), None, ""))
    except Exception as error:  # sent to the caller, which raises it
        where = f"in the worker that made {name}:\n{traceback.format_exc()}"
        try:
            sent = pickle.dumps((None, error, where))
            pickle.loads(sent)  # some exceptions pickle but cannot be rebuilt (their __init__ takes other arguments)
            return sent
        except Exception:
            return pickle.dumps((None, RuntimeError(f"{type(error).__name__}: {error}"), where))


def main() -> None:
    """The server's program (see `Server`): its stdin brings the tasks, its stdout takes the results."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller decides: it ends the whole group
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed, by an import or a child, goes to stderr, not into the results
    from . import registry  # noqa: F401  (imported once, here, for every child)

    try:
        serve(sys.stdin.buffer, results)
    except (BrokenPipeError, EOFError):  # the caller has gone (before or after it sent the tasks): so do
        os.killpg(0, signal.SIGKILL)     # the server and its children, quietly
    os._exit(0)  # tearing down torch's modules at exit would take half a second
