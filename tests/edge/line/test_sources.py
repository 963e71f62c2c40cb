"""Frame sources on real files written to tmp_path; camera and stream only up to 'cannot open'."""

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from edge.config import EdgeConfig, load_config
from edge.line.sources import (
    CameraSource,
    FolderSource,
    StreamSource,
    VideoSource,
    backoff_s,
    build_source,
)
from edge.line.sources.config import (
    CameraSourceConfig,
    FolderSourceConfig,
    StreamSourceConfig,
    VideoSourceConfig,
)
from edge.line.sources.stream import redacted
from qc.overrides import ConfigError
from tests.edge.source_helpers import FAST_RETRY, run_in_thread, status_after_failed_opens, wait_for


def solid(value: int, shape=(48, 64)) -> np.ndarray:
    """An RGB image whose red channel tells which one it is (survives JPEG and MJPG)."""
    image = np.zeros((*shape, 3), np.uint8)
    image[:, :, 0] = value
    return image


def write_folder(folder: Path, values, suffix=".png") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, v in enumerate(values):
        cv2.imwrite(str(folder / f"{i:03d}{suffix}"), cv2.cvtColor(solid(v), cv2.COLOR_RGB2BGR))


def write_video(path: Path, values, fps=25.0, shape=(48, 64)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (shape[1], shape[0]))
    assert writer.isOpened()
    for v in values:
        writer.write(cv2.cvtColor(solid(v, shape), cv2.COLOR_RGB2BGR))
    writer.release()


def take(source, n, timeout_s=10.0):
    """The first n frames (fewer if the source ends), stopping the source afterwards."""
    stop, out = threading.Event(), []
    deadline = time.monotonic() + timeout_s
    for frame in source.frames(stop):
        out.append(frame)
        if len(out) >= n or time.monotonic() > deadline:
            break
    stop.set()
    return out


def red(frame) -> int:
    return int(round(frame.image[:, :, 0].mean()))


def test_folder_replays_files_in_name_order_at_its_rate(tmp_path):
    write_folder(tmp_path / "imgs", [10, 60, 110, 160])
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    source = FolderSource(FolderSourceConfig(type="folder", path=tmp_path / "imgs", fps=40))
    started = time.monotonic()
    frames = take(source, 100)
    assert time.monotonic() - started >= 3 / 40 - 0.01
    assert [red(f) for f in frames] == [10, 60, 110, 160]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in frames)
    assert source.status.ended and not source.status.up


def test_folder_loops_and_skips_corrupt_files_counting_them(tmp_path):
    folder = tmp_path / "imgs"
    write_folder(folder, [10, 60])
    (folder / "001b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "002.jpg").write_bytes(b"")
    source = FolderSource(FolderSourceConfig(type="folder", path=folder, fps=500, loop=True))
    frames = take(source, 6)
    assert [red(f) for f in frames] == [10, 60] * 3
    # The bad files sort last: two passes passed them, the third stopped at its second image.
    assert source.status.skipped == {"unreadable": 4}
    assert "001b.png" in source.status.last_error or "002.jpg" in source.status.last_error


def test_folder_of_only_corrupt_files_backs_off_instead_of_spinning(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"garbage")
    cfg = FolderSourceConfig(type="folder", path=folder, fps=500, loop=True, **FAST_RETRY)
    source = FolderSource(cfg)
    frames, stop, thread = run_in_thread(source)
    time.sleep(0.3)
    stop.set()
    thread.join(2)
    assert frames == [] and not source.status.up
    assert "no readable image" in source.status.last_error
    # Backoff, not a busy loop: at most one read per retry (0.02 s, then 0.04, then 0.05 s ...).
    assert 2 <= source.status.skipped["unreadable"] <= 12


def test_folder_renamed_away_and_back_reconnects_and_resumes(tmp_path):
    folder = tmp_path / "imgs"
    write_folder(folder, range(10, 250, 10))
    cfg = FolderSourceConfig(type="folder", path=folder, fps=100, loop=True, **FAST_RETRY)
    source = FolderSource(cfg)
    frames, stop, thread = run_in_thread(source)
    try:
        wait_for(lambda: len(frames) >= 3)
        folder.rename(tmp_path / "away")
        wait_for(lambda: source.status.reconnects >= 2)
        snap = source.status.snapshot()
        assert not snap["up"] and snap["down_since"] and snap["attempt"] >= 2
        assert "imgs" in snap["last_error"]
        seen = len(frames)
        (tmp_path / "away").rename(folder)
        wait_for(lambda: len(frames) >= seen + 5)
        assert source.status.up and source.status.attempt == 0
    finally:
        stop.set()
        thread.join(2)
    values = [red(f) for f in frames]
    # Resumed after the last file delivered: no file twice in a row, the index keeps counting.
    assert all(a != b for a, b in zip(values, values[1:]))
    assert [f.index for f in frames] == list(range(len(frames)))


def test_missing_folder_goes_to_backoff_not_a_crash(tmp_path):
    source = FolderSource(FolderSourceConfig(type="folder", path=tmp_path / "nope", **FAST_RETRY))
    frames, stop, thread = run_in_thread(source)
    wait_for(lambda: source.status.reconnects >= 2)
    stop.set()
    thread.join(2)
    assert not thread.is_alive() and frames == []
    assert "nope" in source.status.last_error


def test_video_plays_at_its_own_rate_and_at_a_set_rate(tmp_path):
    path = tmp_path / "line.avi"
    write_video(path, [20, 80, 140, 200], fps=20)
    own = VideoSource(VideoSourceConfig(type="video", path=path))
    started = time.monotonic()
    frames = take(own, 100)
    assert time.monotonic() - started >= 3 / 20 - 0.01
    assert own.pacer.fps == pytest.approx(20)
    assert [red(f) for f in frames] == pytest.approx([20, 80, 140, 200], abs=3)
    assert own.status.ended
    fast = VideoSource(VideoSourceConfig(type="video", path=path, fps=500, loop=True))
    started = time.monotonic()
    looped = take(fast, 10)
    assert time.monotonic() - started < 1.0
    assert [red(f) for f in looped][4:8] == pytest.approx([20, 80, 140, 200], abs=3)


def test_video_deleted_then_restored_reconnects(tmp_path):
    path = tmp_path / "line.avi"
    write_video(path, [50, 150], fps=25)
    kept = path.read_bytes()
    cfg = VideoSourceConfig(type="video", path=path, fps=200, loop=True, **FAST_RETRY)
    source = VideoSource(cfg)
    frames, stop, thread = run_in_thread(source)
    try:
        wait_for(lambda: len(frames) >= 3)
        path.unlink()
        wait_for(lambda: source.status.reconnects >= 2)
        assert not source.status.up and "line.avi" in source.status.last_error
        seen = len(frames)
        path.write_bytes(kept)
        wait_for(lambda: len(frames) >= seen + 4)
        assert source.status.up
    finally:
        stop.set()
        thread.join(2)


def test_undecodable_video_is_a_down_source(tmp_path):
    path = tmp_path / "broken.avi"
    path.write_bytes(b"RIFF" + bytes(200))
    source = VideoSource(VideoSourceConfig(type="video", path=path, **FAST_RETRY))
    frames, stop, thread = run_in_thread(source)
    wait_for(lambda: source.status.reconnects >= 1)
    stop.set()
    thread.join(2)
    assert frames == [] and "broken.avi" in source.status.last_error


@pytest.mark.parametrize(
    "config",
    [CameraSourceConfig(type="camera", device=97, **FAST_RETRY),
     CameraSourceConfig(type="camera", device="/dev/video97", **FAST_RETRY),
     StreamSourceConfig(type="stream", url="rtsp://user:secret@127.0.0.1:9/line", **FAST_RETRY)],
)
def test_camera_or_stream_that_cannot_open_backs_off_and_says_so(config):
    source = build_source(config)
    assert isinstance(source, CameraSource | StreamSource)
    snap = status_after_failed_opens(source)
    assert not snap["up"] and snap["down_since"] and "cannot be opened" in snap["last_error"]
    assert "secret" not in snap["last_error"] and "secret" not in str(source.describe())


def test_backoff_doubles_and_is_capped():
    assert [backoff_s(n, 0.5, 3.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert redacted("rtsp://admin:pw@cam/1") == "rtsp://admin:***@cam/1"


def test_source_configs_are_validated(tmp_path):
    ok = [
        {"type": "folder", "path": "imgs", "fps": 5, "loop": True},
        {"type": "video", "path": "line.mp4", "expect_size_px": [480, 640], "max_frame_age_s": 2},
        {"type": "camera", "device": 0, "fps": 30, "capture_size_px": [1080, 1920]},
        {"type": "camera", "device": "/dev/video2"},
        {"type": "stream", "url": "rtsp://10.0.0.7:554/stream1"},
        {"type": "stream", "url": "http://cam.local/mjpg/video.mjpg"},
    ]
    for source in ok:
        EdgeConfig.model_validate({"source": source})
    bad = [
        {"type": "folder"},  # path is required
        {"type": "folder", "path": "x", "fps": 0},
        {"type": "video", "path": "x", "loop": "sometimes"},
        {"type": "camera", "device": -1},
        {"type": "camera", "device": "video0"},
        {"type": "camera", "device": 0, "url": "rtsp://x"},
        {"type": "stream", "url": "ftp://cam/1"},
        {"type": "stream", "url": "rtsp://cam/1", "reconnect_initial_s": 0},
        {"type": "gige"},
    ]
    for source in bad:
        with pytest.raises(ValidationError):
            EdgeConfig.model_validate({"source": source})
    yaml = tmp_path / "edge.yaml"
    yaml.write_text("source:\n  type: folder\n  path: imgs\n  fsp: 3\n")
    with pytest.raises(ConfigError, match=r"source\.folder\.fsp: unknown key"):
        load_config(yaml)
    yaml.write_text("source:\n  type: video\n  path: clips/line.avi\n")
    assert load_config(yaml).source.path == tmp_path / "clips" / "line.avi"  # the file's folder
