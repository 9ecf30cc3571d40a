"""The recalculation engine: headless LibreOffice, recalculation forced on load, macros disabled.

LibreOffice does not recalculate .xlsx files from other producers on load by default; it shows the
cached values. A throw-away user profile per run sets "always recalculate" (so no two runs share a
profile lock) and forbids macros and links.

`Engine` is what verify, read and watch use: one LibreOffice started with `--accept`, kept running for
the whole run, driven through its API by `unobridge.py` (run by a Python that can `import uno`: the
system python3 with Debian's python3-uno, LibreOffice's own `program/python` on macOS and Windows). Each
workbook is loaded hidden, recalculated in full (calculateAll) and read back in bulk: no file is written
and parsed again. `soffice_command` converts files with the same profile (the scripts render and
benchmark with it; the tests save workbooks through LibreOffice with it: tests/libreoffice.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Sequence

from .errors import LessonxlError

DEFAULT_TIMEOUT = 120.0
RESTART_CODE = 81  # LibreOffice's "restart me": it may exit so after setting up a new profile
INSTALL_HINT = ("LibreOffice is needed to recalculate workbooks and `soffice` was not found: install it "
                "with `apt-get install libreoffice-calc-nogui` (Debian/Ubuntu), "
                "`brew install --cask libreoffice` (macOS), or set LESSONXL_SOFFICE to its path")
_MACOS_SOFFICE = "/Applications/LibreOffice.app/Contents/MacOS/soffice"
BRIDGE = Path(__file__).with_name("unobridge.py")
BRIDGE_HINT = ("LibreOffice's Python bridge is needed to drive LibreOffice and {python} cannot import uno: "
               "install it with `apt-get install python3-uno` (Debian/Ubuntu; LibreOffice from "
               "libreoffice.org brings its own Python), or set LESSONXL_UNO_PYTHON to a Python that can "
               "`import uno`")

# Recalculate every formula on load (0 = always), never run a document's macros (security level 3 =
# very high: only signed macros from trusted places, and macro execution disabled outright), and never
# update links to other files (Calc's link update mode 1 = never). The Engine recalculates on load too,
# though it then runs calculateAll: loaded without it ("never", 1; a copy without its charts), graddesc
# with lr = 1e300 gave 0 where #NUM! belongs (LibreOffice 7.4; tests/test_hostile.py), for 0.3 s saved of a
# graddesc file's 1.1 s. LibreOffice's order of calculation matters there: see tests/test_engine.py.
PROFILE_SETTINGS = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="MacroSecurityLevel" oor:op="fuse"><value>3</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="DisableMacrosExecution" oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Content/Update"><prop oor:name="Link" oor:op="fuse"><value>1</value></prop></item>
</oor:items>
"""


def find_soffice() -> str:
    """The LibreOffice executable: $LESSONXL_SOFFICE, else soffice or libreoffice on PATH."""
    configured = os.environ.get("LESSONXL_SOFFICE")
    if configured:
        if shutil.which(configured):
            return configured
        raise LessonxlError(f"LESSONXL_SOFFICE={configured} is not an executable: point it at LibreOffice's "
                            "soffice, or unset it to use the soffice on PATH")
    for name in ("soffice", "libreoffice"):
        found = shutil.which(name)
        if found:
            return found
    if os.path.exists(_MACOS_SOFFICE):
        return _MACOS_SOFFICE
    raise LessonxlError(INSTALL_HINT)


def find_uno_python(soffice: str) -> str:
    """The Python that runs the bridge: $LESSONXL_UNO_PYTHON, else LibreOffice's own (beside soffice on
    macOS and Windows), else the system python3 (Debian's python3-uno is built for it)."""
    configured = os.environ.get("LESSONXL_UNO_PYTHON")
    if configured:
        if shutil.which(configured):
            return configured
        raise LessonxlError(f"LESSONXL_UNO_PYTHON={configured} is not an executable: point it at a Python "
                            "that can `import uno` (the system python3 with python3-uno, or LibreOffice's own "
                            "program/python), or unset it")
    program = Path(os.path.realpath(soffice)).parent
    for bundled in (program / "python", program / "python.exe", program.parent / "Resources" / "python"):
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    for candidate in ("/usr/bin/python3", shutil.which("python3"), sys.executable):
        if candidate and os.path.exists(candidate):
            return candidate
    raise LessonxlError(BRIDGE_HINT.format(python="no Python found"))


def check_uno(python: str) -> None:
    """Refuse, before LibreOffice starts and once for the whole run, a `python` that cannot `import uno`."""
    try:
        works = subprocess.run([python, "-c", "import uno"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        works = False
    if not works:
        raise LessonxlError(BRIDGE_HINT.format(python=python))


def soffice_command(sources: Sequence[Path], outdir: Path, profile: Path, target: str = "xlsx") -> list[str]:
    """The command that converts `sources` into `outdir` with the throw-away `profile`."""
    return [find_soffice(), f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore",
            "--nolockcheck", "--nologo", "--nodefault", "--convert-to", target, "--outdir", str(outdir),
            *map(str, sources)]


def ipc_pipe(profile: Path) -> Path:
    """The socket a LibreOffice started with this profile listens on: /tmp/OSL_PIPE_<uid>_SingleOfficeIPC_
    and the MD5 of the profile's URL in UTF-16, each byte in hex without padding (as LibreOffice's
    officeipcthread names it; measured with 7.4)."""
    digest = hashlib.md5(profile.as_uri().encode("utf-16-le")).digest()
    return Path("/tmp") / f"OSL_PIPE_{os.getuid()}_SingleOfficeIPC_{''.join(format(b, 'x') for b in digest)}"


def make_profile(folder: Path, settings: str = PROFILE_SETTINGS) -> Path:
    """A fresh LibreOffice user profile in `folder` holding `settings`."""
    user = folder / "user"
    user.mkdir(parents=True, exist_ok=True)
    (user / "registrymodifications.xcu").write_text(settings, encoding="utf-8")
    return folder


class EngineFailure(LessonxlError):
    """LibreOffice (or its bridge) hung, crashed or could not start: every workbook not yet done fails."""


class Engine:
    """One LibreOffice kept running for a whole run and driven through its API (`unobridge.py`).

    It starts at once, in the background: `submit` workbooks (they are recalculated in order while the
    caller works), then take each one's `result`: the bridge's reply, values read back in bulk. A step
    (starting, or recalculating one workbook) that takes longer than `timeout` seconds stops LibreOffice
    (EngineFailure), as does a LibreOffice or bridge that crashes; a workbook LibreOffice cannot open is
    a LessonxlError of its own. Each workbook's input areas come first (`inputs`: torch can start on them),
    then the whole recalculated workbook (`result`). `close` ends LibreOffice and removes what it leaves
    (its sockets in /tmp).
    """

    def __init__(self, workdir: Path, timeout: float = DEFAULT_TIMEOUT, run_folder: Path | None = None):
        """`workdir`: where LibreOffice's profile, logs and temporary files go; `run_folder` (default
        `workdir`): the run's whole temporary folder, which the bridge removes with LibreOffice if this
        process dies without closing the engine (kill -9)."""
        workdir = Path(workdir).resolve()
        self.timeout = timeout
        soffice = find_soffice()
        self.python = find_uno_python(soffice)
        check_uno(self.python)
        profile = make_profile(workdir / "profile")
        name = f"lessonxl_{os.getpid()}_{uuid.uuid4().hex[:12]}"
        # LibreOffice listens on two sockets in /tmp: the one named after its profile (single instance)
        # and the one --accept names. A LibreOffice that is killed leaves them behind.
        self.pipes = (ipc_pipe(profile), Path("/tmp") / f"OSL_PIPE_{os.getuid()}_{name}")
        # LibreOffice's own temporary files (lu*.tmp) go into the run's folder, so that they go with it
        # even when LibreOffice is killed before it can remove them.
        scratch = workdir / "tmp"
        scratch.mkdir(exist_ok=True)
        self._env = {**os.environ, "TMPDIR": str(scratch), "TMP": str(scratch), "TEMP": str(scratch)}
        self._command = [soffice, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--invisible",
                         "--norestore", "--nolockcheck", "--nologo", "--nodefault",
                         f"--accept=pipe,name={name};urp;"]
        self._logs = (workdir / "soffice.out", workdir / "soffice.err", workdir / "bridge.err")
        self._soffice = self._bridge = None
        self._replies: queue.Queue = queue.Queue()
        self._done: dict[tuple[int, str], dict] = {}  # replies not yet taken: (ticket, part)
        self._asked: dict[int, list] = {}
        self._next = 0
        self._ready = False
        self._restarts = 0
        self._failure: EngineFailure | None = None
        self._progress = time.monotonic()
        try:
            self._launch()
            with open(self._logs[2], "wb") as errors:
                # If this process dies, the bridge's stdin ends: it then ends LibreOffice (the processes
                # started with this profile) and removes the sockets and the run's folder.
                leftovers = [str(Path(run_folder or workdir).resolve()), *map(str, self.pipes)]
                self._bridge = subprocess.Popen([self.python, str(BRIDGE), name, profile.as_uri(), *leftovers],
                                                stdin=subprocess.PIPE,
                                                stdout=subprocess.PIPE, stderr=errors, start_new_session=True,
                                                env=self._env)
        except OSError as error:  # an executable that cannot be run (no interpreter, no permission)
            self.kill()
            program = self._command[0] if self._soffice is None else self.python
            raise LessonxlError(f"{program} could not be started ({error.strerror or error}). "
                                + (INSTALL_HINT if self._soffice is None else BRIDGE_HINT.format(python=program))) \
                from None
        threading.Thread(target=self._read, args=(self._bridge.stdout,), daemon=True).start()

    def _launch(self) -> None:
        with open(self._logs[0], "ab") as out, open(self._logs[1], "ab") as err:
            self._soffice = subprocess.Popen(self._command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                             start_new_session=True, env=self._env)

    def _read(self, stream) -> None:
        """The bridge's replies, line by line, into a queue (None once it has closed its output)."""
        try:
            for line in stream:
                try:
                    self._replies.put(json.loads(line))
                except ValueError:  # not the bridge's JSON: said at once, not after --timeout
                    self._replies.put({"garbled": line[:200].decode(errors="replace").strip()})
                    break
        except (OSError, ValueError):
            pass
        self._replies.put(None)

    def submit(self, path: Path, areas: Sequence = ()) -> int:
        """Ask for `path` to be loaded, recalculated and read back; `areas` (sheet, r0, c0, r1, c1 from
        0) are the ranges whose dates and logical values must be told apart from numbers. The ticket."""
        ticket = self._next
        self._next += 1
        if not self._asked:  # idle until now (between the saves --watch waits for): the clock starts here
            self._progress = time.monotonic()
        self._asked[ticket] = [list(area) for area in areas]
        self._send({"op": "load", "id": ticket, "path": str(path), "areas": self._asked[ticket]})
        return ticket

    def inputs(self, ticket: int) -> dict:
        """The input areas of a submitted workbook, as soon as LibreOffice has loaded it (recalculated on
        load): {"sheets": [one block per area asked for, or None where its sheet is missing]}."""
        early = self._await(ticket, "inputs")
        return {"sheets": early["inputs"]}

    def result(self, ticket: int) -> dict:
        """The whole of a submitted workbook, recalculated in full: {"sheets": [...]}, every sheet's used
        area. The document is then closed in LibreOffice."""
        if ticket not in self._asked:
            raise LessonxlError("LibreOffice could not open the workbook")  # said already by `inputs`
        reply = self._await(ticket, "sheets")
        self._done.pop((ticket, "inputs"), None)
        self._asked.pop(ticket, None)
        self._send({"op": "close", "id": ticket})
        return reply

    def _await(self, ticket: int, part: str) -> dict:
        while (ticket, part) not in self._done and (ticket, "error") not in self._done:
            message = self._reply()
            kind = "error" if "error" in message else "inputs" if "inputs" in message else "sheets"
            self._done[message["id"], kind] = message
        if (ticket, "error") in self._done:
            reply = self._done.pop((ticket, "error"))
            self._done.pop((ticket, "inputs"), None)
            self._asked.pop(ticket, None)
            if reply.get("lost"):
                self._fail(reply["error"])
            self._send({"op": "close", "id": ticket})
            raise LessonxlError(reply["error"])
        return self._done[ticket, part] if part == "inputs" else self._done.pop((ticket, part))

    @property
    def failed(self) -> bool:
        """Whether LibreOffice hung, crashed or could not start (this engine is then stopped)."""
        return self._failure is not None

    def recalculate(self, path: Path, areas: Sequence = ()) -> tuple[dict, dict]:
        """`path` loaded and recalculated: (its input areas, the whole workbook); see `inputs`, `result`."""
        ticket = self.submit(path, areas)
        return self.inputs(ticket), self.result(ticket)

    def _send(self, message: dict) -> None:
        if self._failure is not None:
            raise self._failure
        try:
            self._bridge.stdin.write((json.dumps(message) + "\n").encode())
            self._bridge.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the bridge is gone: the next reply awaited says why

    def _reply(self) -> dict:
        """The bridge's next reply (after it said it is ready), LibreOffice watched while waiting."""
        if self._failure is not None:
            raise self._failure
        while True:
            try:
                message = self._replies.get(timeout=0.05)
            except queue.Empty:
                pass
            else:
                if message is None:
                    self._fail()
                if "garbled" in message:
                    self._fail(f"LibreOffice's bridge ({self.python} {BRIDGE.name}) wrote a line that is not "
                               f"its JSON: {message['garbled']!r}")
                self._progress = time.monotonic()
                if message.get("ready"):
                    self._ready = True
                    continue
                return message
            code = self._soffice.poll()
            if code == RESTART_CODE and not self._ready and self._restarts < 3:
                self._restarts += 1  # LibreOffice asked to be restarted once it had set up the new profile
                self._launch()
                continue
            if code is not None:
                self._fail()
            if time.monotonic() - self._progress > self.timeout:
                doing = "finish recalculating" if self._ready else "start"
                self._fail(f"LibreOffice did not {doing} within {self.timeout:g} s and was stopped (a larger "
                           "--timeout may help)")

    def _fail(self, message: str = "") -> None:
        """Stop everything and raise EngineFailure saying why: `message`, or how LibreOffice or the
        bridge ended."""
        if not message:
            deadline = time.monotonic() + 1.0  # a bridge that lost LibreOffice: LibreOffice's exit code
            while self._soffice.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            message = self._how_it_ended()
        self.kill()
        self._failure = EngineFailure(message)
        raise self._failure

    def _how_it_ended(self) -> str:
        code = self._soffice.poll()
        if code is not None:
            return how_it_ended(code, last_line(self._logs[1].read_bytes() if self._logs[1].exists() else b"")
                                or last_line(self._logs[0].read_bytes() if self._logs[0].exists() else b""))
        bridge = self._logs[2].read_bytes() if self._logs[2].exists() else b""
        if b"No module named 'uno'" in bridge or b"No module named uno" in bridge:
            return BRIDGE_HINT.format(python=self.python)
        line = last_line(bridge)
        return f"LibreOffice's bridge ({self.python} {BRIDGE.name}) stopped" + (f": {line}" if line else "")

    def close(self) -> None:
        """End LibreOffice (asked to terminate once the bridge is connected, killed if it does not at once,
        or before) and remove its sockets."""
        if self._ready and self._failure is None and self._bridge.poll() is None:
            try:
                self._bridge.stdin.write(b'{"op": "quit"}\n')
                self._bridge.stdin.close()
                self._soffice.wait(timeout=2.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self) -> None:
        """Stop LibreOffice, the bridge and everything they started; remove the sockets left behind."""
        for process in (self._soffice, self._bridge):
            stop_group(process)
        if self._bridge is not None:
            try:
                self._bridge.stdin.close()
            except OSError:
                pass
        for pipe in self.pipes:
            if pipe.is_socket():
                pipe.unlink(missing_ok=True)

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def how_it_ended(code: int, detail: str = "") -> str:
    """How a LibreOffice that exited with status `code` while recalculating ended, in one line; `detail`:
    the last line it printed."""
    detail = f": {detail}" if detail else ""
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        return f"LibreOffice crashed ({name}) while recalculating{detail}"
    if code == 0:
        return f"LibreOffice exited before it could recalculate{detail}"
    return f"LibreOffice failed (exit code {code}) while recalculating{detail}"


def stop_group(process: subprocess.Popen | None) -> None:
    """Kill a process started in a session of its own, and everything it started, if it still runs."""
    if process is not None and process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def last_line(output: bytes | None) -> str:
    """The last non-blank line LibreOffice printed, shortened to fit in a one-line message."""
    lines = [line.strip() for line in (output or b"").decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""
