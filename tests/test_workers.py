"""`lessonxl generate` on several cores: workbooks made by worker processes, the same bytes as made in
this process, errors and Ctrl-C handled as the single-process path handles them, nothing left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lessonxl
from lessonxl import cli, workers
from lessonxl.lesson import Lesson

from conftest import run_cli

SERVER = b"from lessonxl.workers import main"


def worker_processes() -> dict[int, tuple[int, int]]:
    """Live processes running a fork server of lessonxl or a child it forked (they share its command
    line): pid -> (parent pid, session id). A server is its session's leader: its session id is its pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and SERVER in (entry / "cmdline").read_bytes():
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                found[int(entry.name)] = (int(fields[1]), int(fields[3]))
        except OSError:
            pass
    return found


def in_session(server: int) -> list[int]:
    """The live processes of a server's session: the server and its children."""
    return [pid for pid, (_, session) in worker_processes().items() if session == server]


def until(condition, seconds: float = 60):
    """Wait until `condition()` holds (or `seconds` pass); its last value."""
    deadline = time.monotonic() + seconds
    while not (found := condition()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def started_workers(process: subprocess.Popen) -> int:
    """The fork server of a `lessonxl generate` process, once it and two children run."""
    server = until(lambda: next((pid for pid, (parent, _) in worker_processes().items() if parent == process.pid),
                                None))
    assert server and until(lambda: len(in_session(server)) == 3), "the workers never started"
    return server


@pytest.fixture
def servers(monkeypatch) -> list[int]:
    """The pid of every fork server this test starts in this process; and no workbook may be made in
    this process (workers see nothing of this test's patches)."""
    started = []

    def not_here(*args, **kwargs):
        raise AssertionError("a workbook was made in the calling process")

    monkeypatch.setattr(Lesson, "make", not_here)

    class Recorded(workers.Server):
        def __init__(self):
            super().__init__()
            started.append(self.pid)

    monkeypatch.setattr(workers, "Server", Recorded)
    return started


def test_workbooks_made_by_workers_are_the_bytes_made_in_this_process(generated, tmp_path, servers):
    paths = lessonxl.generate(out=tmp_path, device="cpu", jobs=2)
    assert [path.name for path in paths] == [path.name for path in generated.values()]
    for path, made_here in zip(paths, generated.values()):
        assert path.read_bytes() == made_here.read_bytes(), path.name
    assert sorted(tmp_path.iterdir()) == sorted(paths)  # no partial file left
    assert len(servers) == 1 and not in_session(servers[0])


def test_a_usage_error_in_a_worker_is_raised_as_is(tmp_path, servers):
    missing = tmp_path / "u.data"
    with pytest.raises(lessonxl.LessonxlError) as raised:
        lessonxl.generate(["collab_filter", "entropy_example"], out=tmp_path / "out", jobs=2, ratings=missing)
    assert str(raised.value) == f"{missing}: no such ratings file" and raised.value.__cause__ is None
    assert not (tmp_path / "out").exists()
    assert len(servers) == 1 and not in_session(servers[0])


def test_a_usage_error_in_a_worker_is_the_command_lines_one_line(tmp_path):
    missing = tmp_path / "u.data"
    result = run_cli("generate", "--jobs", "2", "--out", tmp_path / "out", "--ratings", missing,
                     "collab_filter", "entropy_example")
    assert result.returncode == 2
    assert result.stderr == f"lessonxl generate: {missing}: no such ratings file\n"
    assert not (tmp_path / "out").exists()


def test_any_other_error_in_a_worker_is_raised_with_the_workers_traceback():
    server = workers.Server()
    # its command line shows once exec has set it up, a moment after Popen returns
    assert until(lambda: in_session(server.pid), 10) == [server.pid]
    try:
        with pytest.raises(TypeError, match="bogus") as raised:
            list(server.make_all([("entropy_example", {}), ("collab_filter", {"bogus": 1})], 0, "cpu", 2))
    finally:
        server.stop()
    where = str(raised.value.__cause__)
    assert where.startswith("in the worker that made collab_filter:\nTraceback") and "bogus" in where
    assert not in_session(server.pid)


def test_jobs_must_be_a_whole_number_of_at_least_one(tmp_path, capsys):
    assert cli.main(["generate", "--jobs", "0", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "lessonxl generate: --jobs 0: give a whole number of at least 1\n"
    with pytest.raises(lessonxl.LessonxlError, match="--jobs 2.5"):
        lessonxl.generate(out=tmp_path, jobs=2.5)
    assert not list(tmp_path.iterdir())
    # verify's LibreOffice processes: refused before any starts
    assert cli.main(["verify", "--jobs", "0", str(Path(__file__).parent.parent / "workbooks" / "graddesc.xlsx")]) == 2
    assert capsys.readouterr().err == "lessonxl verify: --jobs 0: give a whole number of at least 1\n"
    with pytest.raises(lessonxl.LessonxlError, match="--jobs True"):
        lessonxl.verify(tmp_path / "any.xlsx", jobs=True)


def test_ctrl_c_while_workers_compute_stops_them_all_and_writes_nothing_half(tmp_path):
    # a bigger collab_filter, so that the workers are still computing when Ctrl-C comes
    out = tmp_path / "out"
    command = [sys.executable, "-m", "lessonxl", "generate", "--jobs", "2", "--out", str(out), "--users", "60",
               "--movies", "60", "collab_filter", "graddesc"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server = started_workers(process)
    process.send_signal(signal.SIGINT)
    out_text, err_text = process.communicate(timeout=60)
    assert process.returncode == 130, err_text
    assert "Traceback" not in err_text
    assert not in_session(server)
    left = sorted(path.name for path in out.iterdir()) if out.exists() else []
    assert all(not name.endswith(".part") for name in left), left
    assert all(f"wrote {out / name}" in out_text for name in left)  # a file there was written whole


def test_one_workbook_or_one_job_is_made_in_this_process(tmp_path, monkeypatch):
    def no_server():
        raise AssertionError("a worker process was started")

    monkeypatch.setattr(workers, "Server", no_server)
    assert lessonxl.generate(["entropy_example"], out=tmp_path, device="cpu") == [tmp_path / "entropy_example.xlsx"]
    assert len(lessonxl.generate(["entropy_example", "regularization"], out=tmp_path, device="cpu", jobs=1)) == 2


def test_a_worker_that_dies_is_an_error_naming_its_workbook():
    server = workers.Server()
    try:
        results = server.make_all([("collab_filter", {"users": 60, "movies": 60})], 0, "cpu", 1)
        child = until(lambda: [pid for pid in in_session(server.pid) if pid != server.pid])
        assert child, "the worker never started"
        os.kill(child[0], signal.SIGKILL)
        with pytest.raises(RuntimeError, match=r"^the worker that made collab_filter stopped \(exit status -9\)$"):
            next(results)
    finally:
        server.stop()
    assert not in_session(server.pid)


def test_workers_end_when_the_caller_is_killed(tmp_path):
    # collab_filter at 100 x 100 takes its worker many seconds: the workers must end long before that
    command = [sys.executable, "-m", "lessonxl", "generate", "--jobs", "2", "--out", str(tmp_path), "--users", "100",
               "--movies", "100", "collab_filter", "graddesc"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = started_workers(process)
    process.kill()
    process.wait()
    killed = time.monotonic()
    assert until(lambda: not in_session(server), 5), f"workers still running: {in_session(server)}"
    assert time.monotonic() - killed < 5
    assert not list(tmp_path.iterdir())


def test_a_server_that_dies_is_one_usage_error():
    server = workers.Server()
    try:
        results = server.make_all([("entropy_example", {})], 0, "cpu", 1)
        os.kill(server.pid, signal.SIGKILL)  # while it imports torch
        with pytest.raises(lessonxl.LessonxlError, match=r"^the worker processes stopped \(exit status -9\); "):
            next(results)
    finally:
        server.stop()


def test_an_unknown_name_is_refused_before_any_worker_starts(tmp_path, servers):
    with pytest.raises(lessonxl.LessonxlError, match="unknown workbook 'nope': choose from collab_filter, "):
        lessonxl.generate(["graddesc", "nope"], out=tmp_path, jobs=2)
    assert servers == [] and not list(tmp_path.iterdir())


def test_where_fork_is_unsafe_the_workbooks_are_made_in_this_process(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(workers, "Server", lambda: started.append(1))
    monkeypatch.setattr(workers.sys, "platform", "darwin")
    assert not workers.available()
    paths = lessonxl.generate(["entropy_example", "regularization"], out=tmp_path, device="cpu", jobs=2)
    assert [path.name for path in paths] == ["entropy_example.xlsx", "regularization.xlsx"] and started == []


@pytest.mark.parametrize("load, expected", [(0.0, 2), (0.4, 2), (0.6, 1), (1.7, 1), (9.0, 1)])
def test_the_default_counts_the_idle_cores(monkeypatch, load, expected):
    monkeypatch.setattr(workers, "cores", lambda: 2)
    monkeypatch.setattr(workers.os, "getloadavg", lambda: (load, 0.0, 0.0))
    assert workers.default_jobs() == expected


def test_a_caller_gone_before_it_sent_the_tasks_leaves_no_server_and_no_traceback():
    """The server's stdin ends before any task came (the caller killed at once): it ends its own group,
    quietly (it used to die of an EOFError's traceback)."""
    program = f"import sys; sys.path[:] = {sys.path!r}; from lessonxl.workers import main; main()"
    done = subprocess.run([sys.executable, "-c", program], stdin=subprocess.DEVNULL, capture_output=True,
                          start_new_session=True, timeout=60)
    assert done.returncode == -9 and b"Traceback" not in done.stderr, done.stderr.decode()[-2000:]
