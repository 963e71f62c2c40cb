import numpy as np
import pytest

from qc.tiling import TileGrid, blend_window, tile_starts


@pytest.mark.parametrize("length, tile, overlap", [(4096, 256, 32), (256, 256, 32), (300, 64, 16), (65, 64, 0)])
def test_tiles_cover_every_pixel_and_stay_inside(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    covered = np.zeros(length, bool)
    for s in starts:
        assert 0 <= s and s + tile <= max(length, tile)
        covered[s : s + tile] = True
    assert covered.all()
    gaps = np.diff(starts)
    assert (gaps <= tile - overlap).all()


def test_bad_overlap_is_refused():
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(100, 32, 32)


def test_cut_and_blend_reconstruct_a_smooth_map(rng):
    height, width = 150, 410
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    grid = TileGrid.for_image(height, width, 64, 16)
    tiles = grid.cut(image)
    assert tiles.shape == (len(grid.boxes), 64, 64, 3)
    # a per-pixel map blended from tiles equals the map itself: blending never shifts values
    full = image[:, :, 0].astype(np.float32) / 255
    maps = np.stack([full[y : y + 64, x : x + 64] for y, x in grid.boxes])
    np.testing.assert_allclose(grid.blend(maps), full, atol=1e-6)


def test_small_images_are_mirror_padded_to_a_tile(rng):
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    grid = TileGrid.for_image(20, 30, 64, 16)
    tiles = grid.cut(image)
    assert tiles.shape == (1, 64, 64, 3)
    np.testing.assert_array_equal(tiles[0, :20, :30], image)
    blended = grid.blend(np.ones((1, 64, 64), np.float32))
    assert blended.shape == (20, 30)


def test_window_is_flat_inside_and_positive_at_edges():
    w = blend_window(64, 16)
    assert w.min() > 0 and w[32, 32] == 1.0 and w[0, 0] < w[8, 8]
