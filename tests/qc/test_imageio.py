import cv2
import numpy as np
import pytest

from qc.imageio import ImageReadError, read_image, read_mask, to_rgb_uint8, write_image_atomic


def test_colour_png_round_trips_in_rgb_order(tmp_path, rng):
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = write_image_atomic(tmp_path / "a.png", image)
    np.testing.assert_array_equal(read_image(path), image)
    # on disk it is BGR, as every other tool expects
    np.testing.assert_array_equal(cv2.imread(str(path))[:, :, ::-1], image)


def test_grey_alpha_and_16_bit_become_rgb_uint8(tmp_path):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 128)])
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    deep = (grey.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    for name in ("g.png", "rgba.png", "deep.png"):
        out = read_image(tmp_path / name)
        assert out.dtype == np.uint8 and out.shape == (8, 8, 3)
        np.testing.assert_array_equal(out[:, :, 0], grey)
        np.testing.assert_array_equal(out[:, :, 2], grey)


@pytest.mark.parametrize(
    "content, reason",
    [(None, "no such file"), (b"", "empty"), (b"this is not an image", "not a readable image")],
)
def test_unreadable_files_name_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason) as info:
        read_image(path)
    assert "bad.png" in str(info.value)


@pytest.mark.parametrize("reader", [read_image, read_mask])
def test_a_file_gone_between_the_check_and_the_read_is_an_image_read_error(
    tmp_path, monkeypatch, reader
):
    # A folder renamed away while a camera folder is replayed: the existence check passes, then
    # the read finds nothing. Callers handle ImageReadError (a lost source), not a raw OSError.
    path = tmp_path / "vanished.png"
    monkeypatch.setattr(type(path), "is_file", lambda self: True)
    with pytest.raises(ImageReadError, match="vanished.png: cannot be read"):
        reader(path)


def test_unsupported_arrays_are_refused():
    with pytest.raises(ImageReadError, match="empty"):
        to_rgb_uint8(np.zeros((0, 5), np.uint8))
    with pytest.raises(ImageReadError, match="pixel type"):
        to_rgb_uint8(np.zeros((4, 4), np.int64))
    with pytest.raises(ImageReadError, match="shape"):
        to_rgb_uint8(np.zeros((4, 4, 7), np.uint8))


def test_mask_is_binarised(tmp_path):
    mask = np.zeros((5, 5), np.uint8)
    mask[1, 1], mask[2, 2] = 1, 200
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    out = read_mask(tmp_path / "m.png")
    assert set(np.unique(out)) == {0, 255} and out[1, 1] == 255


def test_atomic_write_leaves_no_temporary_files(tmp_path, rng):
    image = rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)
    write_image_atomic(tmp_path / "x" / "img.jpg", image)
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["img.jpg"]
