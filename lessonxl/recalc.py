"""The recalculation engine: headless LibreOffice, recalculation forced on load, macros disabled.

LibreOffice does not recalculate .xlsx files from other producers on load by default; it shows the
cached values. A throw-away user profile per run sets "always recalculate" (so no two runs share a
profile lock), and one process converts every file of the run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Sequence

from .errors import UsageError

DEFAULT_TIMEOUT = 120.0
RESTART_CODE = 81  # LibreOffice's "restart me": it may exit so after setting up a new profile
INSTALL_HINT = ("LibreOffice is needed to recalculate workbooks and `soffice` was not found: install it "
                "with `apt-get install libreoffice-calc-nogui` (Debian/Ubuntu), "
                "`brew install --cask libreoffice` (macOS), or set LESSONXL_SOFFICE to its path")
_MACOS_SOFFICE = "/Applications/LibreOffice.app/Contents/MacOS/soffice"

# Recalculate every formula on load (0 = always), never run a document's macros (security level 3 =
# very high: only signed macros from trusted places, and macro execution disabled outright), and never
# update links to other files (Calc's link update mode 1 = never).
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
        raise UsageError(f"LESSONXL_SOFFICE={configured} is not an executable. {INSTALL_HINT}")
    for name in ("soffice", "libreoffice"):
        found = shutil.which(name)
        if found:
            return found
    if os.path.exists(_MACOS_SOFFICE):
        return _MACOS_SOFFICE
    raise UsageError(INSTALL_HINT)


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


class Recalculation:
    """One LibreOffice process recalculating several workbooks, started now, awaited with `wait`."""

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
        LibreOffice that crashed or failed is reported: both as a one-line UsageError.
        """
        if self._process is None:
            return {}
        stdout, stderr = self._communicate()
        if self._process.returncode == RESTART_CODE:
            self._launch()  # LibreOffice asked to be restarted once it had set up the new profile
            stdout, stderr = self._communicate()
        code = self._process.returncode
        detail = _last_line(stderr) or _last_line(stdout)
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
            raise UsageError(f"LibreOffice crashed ({name}) while recalculating"
                             + (f": {detail}" if detail else ""))
        if code != 0:
            raise UsageError(f"LibreOffice failed (exit code {code}) while recalculating"
                             + (f": {detail}" if detail else ""))
        self.detail = detail
        return {src: (out if (out := self.outdir / src.name).exists() else None) for src in self.sources}

    def _communicate(self) -> tuple[bytes, bytes]:
        remaining = max(0.0, self.timeout - (time.monotonic() - self._started))
        try:
            return self._process.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            self.kill()
            raise UsageError(f"LibreOffice did not finish recalculating within {self.timeout:g} s and was "
                             "stopped (a larger --timeout may help)") from None

    def kill(self) -> None:
        """Stop LibreOffice and everything it started, and remove what a killed LibreOffice leaves."""
        if self._process is None:
            return
        if self._process.poll() is None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._process.wait()
        # A LibreOffice that was killed or crashed leaves the socket it listens on in /tmp.
        if self._pipe.is_socket():
            self._pipe.unlink(missing_ok=True)


def _last_line(output: bytes | None) -> str:
    """The last non-blank line LibreOffice printed, shortened to fit in a one-line message."""
    lines = [line.strip() for line in (output or b"").decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""
