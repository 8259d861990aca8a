"""extract_frames.py against hostile input and a failing machine: a timestamp gap bounded and named, ids
that are the tool's own file names refused one by one, --flow-bound / --fps checked when parsed, a full
disk making the run fail (once, by name), a second run refused naming the first, and workers that die
with a killed run (so a rerun is not locked out).  Tiny videos written here with PyAV (skipped without it)."""
import csv
import errno
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction

import pytest

import extract_frames as xf
from utils import cli
from test_extract_frames import counter_frame, encoder, read_counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def extract(argv: list[str]) -> int:
    """extract_frames.py as a user runs it: errors become one line and an exit status (utils/cli.py)."""
    return cli.run(xf.main, argv, prog="extract_frames")


def write_pts(av, path, pts: list[int], time_base: Fraction) -> None:
    """A video whose frames carry the timestamps ``pts`` (in ``time_base``), whatever they are."""
    with av.open(str(path), "w") as c:
        s = c.add_stream(encoder(av, "h264"), rate=int(1 / time_base))
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = time_base
        for i, p in enumerate(pts):
            f = av.VideoFrame.from_ndarray(counter_frame(i), format="rgb24")
            f.pts, f.time_base = p, time_base
            c.mux(s.encode(f))
        c.mux(s.encode())


def summary(out) -> dict[str, tuple[str, str]]:
    with open(out / xf.SUMMARY_FILE) as f:
        return {r["id"]: (r["status"], r["message"]) for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def av():
    return pytest.importorskip("av")


def test_a_timestamp_gap_is_bounded_and_named(av, tmp_path, capsys):
    (tmp_path / "v").mkdir()
    write_pts(av, tmp_path / "v" / "gap.mp4", [0, 1, 7200], Fraction(1, 12))  # 0, 1/12 s, 600 s
    assert (tmp_path / "v" / "gap.mp4").stat().st_size < 5000
    assert extract([str(tmp_path / "v"), str(tmp_path / "out"), "--workers", "1"]) == 0
    names = sorted(os.listdir(tmp_path / "out" / "gap"))
    shown = [read_counter(tmp_path / "out" / "gap" / f) for f in names]
    # frame 0 until 1/12 s (2 instants), frame 1 for the 10 s the gap is shortened to, then frame 2 for
    # its own duration (the container's): no longer 14,402 frames
    assert shown[:242] == [0, 0] + [1] * 240 and set(shown[242:]) == {2} and len(shown) <= 242 + 240
    status, message = summary(tmp_path / "out")["gap"]
    assert status == "warning" and "timestamp gap of 599.9" in message and "shortened to 10 s" in message
    assert "warning: gap: timestamp gap of 599.9" in capsys.readouterr().out  # the log names video and gap


def test_ids_that_are_the_tools_own_files_are_refused_one_by_one(av, tmp_path, capsys):
    videos = tmp_path / "v"
    videos.mkdir()
    for name in ("log.txt.mp4", ".partial.mp4", "extract_frames.json.mp4", "fine.mp4"):
        write_pts(av, videos / name, [0, 1, 2], Fraction(1, 12))
    out = tmp_path / "out"
    for attempt in range(2):  # the same on a rerun: never counted as done, never a traceback
        assert extract([str(videos), str(out), "--workers", "1"]) == 0
        rows = summary(out)
        assert set(rows) == {"log.txt", ".partial", "extract_frames.json"}
        assert all(s == "failed" and "would be one of extract_frames.py's own files" in m and "rename the video"
                   in m for s, m in rows.values())
        assert len(os.listdir(out / "fine")) == 6 and (out / "log.txt").is_file()
        logged = capsys.readouterr().out
        assert f"4 videos, {attempt} already extracted, {1 - attempt} to do" in logged and "3 refused" in logged


@pytest.mark.parametrize("flag, value, message", [
    ("--flow-bound", "nan", "argument --flow-bound: 'nan': the flow bound must be a finite number"),
    ("--flow-bound", "inf", "argument --flow-bound: 'inf': the flow bound must be a finite number"),
    ("--flow-bound", "-2", "argument --flow-bound: '-2'"),
    ("--fps", "1/0", "argument --fps: '1/0' is not a frame rate"),
    ("--fps", "0", "argument --fps: '0': the frame rate must be > 0"),
])
def test_flow_bound_and_fps_are_checked_when_parsed(tmp_path, capsys, flag, value, message):
    with pytest.raises(SystemExit) as err:
        extract([str(tmp_path), str(tmp_path / "out"), flag, value])
    assert err.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing recorded: a corrected rerun is not refused


def test_a_full_disk_fails_the_run_naming_the_error_once(av, tmp_path, monkeypatch, capsys):
    videos = tmp_path / "v"
    videos.mkdir()
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        write_pts(av, videos / name, [0, 1, 2], Fraction(1, 12))
    out = tmp_path / "out"
    real = xf.write_file

    def full(path, data):
        if os.path.basename(os.path.dirname(path)) != "a":  # a fits, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", path)
        real(path, data)
    monkeypatch.setattr(xf, "write_file", full)
    assert extract([str(videos), str(out), "--workers", "1"]) == 1
    captured = capsys.readouterr()
    err = captured.err.splitlines()[-1]  # (after the progress bar)
    assert captured.err.count("No space left on device") == 1
    assert err.startswith(f"extract_frames: error: could not write under {out}: [Errno 28] No space left")
    assert captured.out.count("No space left on device") == 1  # the log: one failed video, not every one
    assert "1 of the 3 videos to do written" in err and "run the same command again to resume" in err
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["a"]  # nothing half-written kept
    monkeypatch.setattr(xf, "write_file", real)  # space freed: the rerun resumes and completes
    assert extract([str(videos), str(out), "--workers", "1"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["a", "b", "c"]


STALLED = """
import os, sys, time
sys.path.insert(0, {root!r})
import extract_frames as xf
def write_file(path, data):  # each worker says who it is, then takes its time
    open(os.path.join({marks!r}, str(os.getpid())), "w").close()
    time.sleep(60)
xf.write_file = write_file
xf.main(sys.argv[1:])
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers die with their parent on Linux")
def test_workers_die_with_a_killed_run_so_a_rerun_is_not_locked_out(av, tmp_path, capsys):
    videos, out, marks = tmp_path / "v", tmp_path / "out", tmp_path / "marks"
    videos.mkdir()
    marks.mkdir()
    for name in ("a.mp4", "b.mp4"):
        write_pts(av, videos / name, [0, 1, 2], Fraction(1, 12))
    run = subprocess.Popen([sys.executable, "-c", STALLED.format(root=ROOT, marks=str(marks)), str(videos),
                            str(out), "--workers", "2"], cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(os.listdir(marks)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = [int(p) for p in os.listdir(marks)]
        assert len(workers) == 2 and run.pid not in workers
        assert extract([str(videos), str(out), "--workers", "1"]) == 2  # a second run meanwhile: refused, by name
        assert (f"is in use by another extract_frames.py run (pid {run.pid} on" in capsys.readouterr().err)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    deadline = time.monotonic() + 5
    while any(map(alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    orphans = [w for w in workers if alive(w)]
    for w in orphans:
        os.kill(w, signal.SIGKILL)
    assert not orphans
    assert extract([str(videos), str(out), "--workers", "1"]) == 0  # at once: the lock is free
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["a", "b"]
