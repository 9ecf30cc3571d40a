"""Workbooks saved through LibreOffice, as a user's LibreOffice saves them: the tests make LibreOffice-saved
files with `Recalculation` (soffice --convert-to, verify's profile: recalculated on load). Test-only: verify
itself reads LibreOffice's results through its API (`lessonxl.recalc.Engine`), and shares with this the
profile, the command, the exit messages and the way a process group is stopped.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Sequence

from lessonxl.errors import LessonxlError
from lessonxl.recalc import (DEFAULT_TIMEOUT, RESTART_CODE, how_it_ended, ipc_pipe, last_line,
                             make_profile, soffice_command, stop_group)


class Recalculation:
    """One LibreOffice process opening and saving several workbooks as .xlsx (soffice --convert-to),
    recalculated as a user's LibreOffice does with verify's profile: started now, awaited with `wait`."""

    def __init__(self, sources: Sequence[Path], workdir: Path, timeout: float = DEFAULT_TIMEOUT):
        self.sources = list(sources)
        workdir = Path(workdir).resolve()
        self.outdir = workdir / "recalculated"
        self.timeout = timeout
        self._started = time.monotonic()
        self._process = None
        self.detail = ""  # LibreOffice's last line of output, once it has finished
        if self.sources:
            profile = make_profile(workdir / "profile")
            self._pipe = ipc_pipe(profile)
            self._command = soffice_command(self.sources, self.outdir, profile)
            # LibreOffice's own temporary files (lu*.tmp) go into the run's folder, so that they go with
            # it even when LibreOffice is killed before it can remove them.
            scratch = workdir / "tmp"
            scratch.mkdir(exist_ok=True)
            self._env = {**os.environ, "TMPDIR": str(scratch), "TMP": str(scratch), "TEMP": str(scratch)}
            self._launch()

    def _launch(self) -> None:
        self._process = subprocess.Popen(self._command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True, env=self._env)

    def wait(self) -> dict[Path, Path | None]:
        """Each source's recalculated copy, or None where LibreOffice wrote none (it could not open it).

        A conversion still running after `timeout` seconds (from the start) is killed, and a
        LibreOffice that crashed or failed is reported: both as a one-line LessonxlError.
        """
        if self._process is None:
            return {}
        stdout, stderr = self._communicate()
        if self._process.returncode == RESTART_CODE:
            self._launch()  # LibreOffice asked to be restarted once it had set up the new profile
            stdout, stderr = self._communicate()
        code = self._process.returncode
        self.detail = last_line(stderr) or last_line(stdout)
        if code != 0:
            raise LessonxlError(how_it_ended(code, self.detail))
        return {src: (out if (out := self.outdir / src.name).exists() else None) for src in self.sources}

    def _communicate(self) -> tuple[bytes, bytes]:
        remaining = max(0.0, self.timeout - (time.monotonic() - self._started))
        try:
            return self._process.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            self.kill()
            raise LessonxlError(f"LibreOffice did not finish recalculating within {self.timeout:g} s and was "
                                "stopped (a larger --timeout may help)") from None

    def kill(self) -> None:
        """Stop LibreOffice and everything it started, and remove what a killed LibreOffice leaves."""
        if self._process is None:
            return
        stop_group(self._process)
        # A LibreOffice that was killed or crashed leaves the socket it listens on in /tmp.
        if self._pipe.is_socket():
            self._pipe.unlink(missing_ok=True)
