import numpy as np

from qc.padding import fill_padding, padding_mask, suppress_padding


def _strip(rng):
    strip = rng.integers(60, 160, (64, 400, 3), dtype=np.uint8)  # woven texture
    strip[:, :150] = 255  # the flat white end of a line-scan strip
    return strip


def test_white_end_of_a_strip_and_a_margin_are_padding(rng):
    mask = padding_mask(_strip(rng))
    assert mask[:, :150].all() and mask[:, 150:150 + 8].all()
    assert not mask[:, 170:].any()


def test_flat_cloth_and_flat_defects_inside_the_cloth_are_not_padding(rng):
    cloth = rng.integers(60, 160, (64, 400, 3), dtype=np.uint8)
    cloth[20:40, 200:230] = 255  # a hole showing the white backlight: a defect, not padding
    assert padding_mask(cloth) is None
    smooth_grey = np.full((64, 400, 3), 128, np.uint8)  # a plain, noiseless mid-grey fabric
    assert padding_mask(smooth_grey) is None


def test_padding_is_painted_over_by_the_cloth_beside_it_mirrored(rng):
    """What the network is fed: a tile partly of flat white padding, normalised by its own
    statistics, left the network blind to the cloth beside the padding (qc.padding.fill_padding)."""
    strip = _strip(rng)
    cloth_from = int(np.flatnonzero(~padding_mask(strip)[0])[0])  # the padding's margin is painted over too
    filled = fill_padding(strip)
    np.testing.assert_array_equal(filled[:, cloth_from:], strip[:, cloth_from:])
    for k in range(cloth_from):
        np.testing.assert_array_equal(filled[:, cloth_from - 1 - k], strip[:, cloth_from + k])
    assert filled.max() < 160 and (strip == 255).any()  # the original is left as it was


def test_an_image_without_padding_is_fed_as_it_is(rng):
    cloth = rng.integers(60, 160, (64, 400, 3), dtype=np.uint8)
    assert fill_padding(cloth) is cloth


def test_padding_wider_than_the_cloth_and_whole_rows_of_it_are_filled_too(rng):
    image = rng.integers(60, 160, (64, 400, 3), dtype=np.uint8)
    image[:, :340] = 255  # padding six times wider than the cloth: mirrored again and again
    image[:12] = 255  # and the top rows padding from end to end: mirrored from the columns
    mask = padding_mask(image)
    assert mask[:20].all()  # whole rows
    filled = fill_padding(image)
    assert filled.max() < 160
    np.testing.assert_array_equal(filled[~mask], image[~mask])


def test_suppression_clears_padding_and_rescores(rng):
    strip = _strip(rng)
    heat = np.zeros(strip.shape[:2], np.float32)
    heat[:, 148:152] = 0.99  # the false alarm where cloth meets padding
    heat[30:35, 300:305] = 0.9  # a real defect in the cloth
    cleared, score = suppress_padding(strip, heat, 0.99)
    assert cleared[:, 148:152].max() == 0.0 and cleared[32, 302] == np.float32(0.9)
    assert 0.85 < score <= 0.9
    untouched, same = suppress_padding(rng.integers(60, 160, (64, 64, 3), dtype=np.uint8), heat[:, :64], 0.5)
    assert same == 0.5 and untouched is not None


def test_the_flatness_rule_worked_in_bands_matches_the_whole_image(rng, monkeypatch):
    """Band edges must not show: the banded rule equals the plain expressions on the whole image."""
    import cv2

    from qc import padding

    image = rng.integers(60, 160, (101, 90, 3), dtype=np.uint8)
    image[:, :20] = 255  # a flat white end ...
    image[:40, 50:] = 0  # ... a black corner ...
    image[30:70, 60:62] = 255  # ... and thin lines across band edges: flat only in places
    image[45:48, :] = 250
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mean = cv2.blur(grey, (9, 9))
    var = np.maximum(cv2.blur(grey * grey, (9, 9)) - mean * mean, 0.0)
    expected = (var < padding.FLAT_STD**2) & ((mean >= 250) | (mean <= 5))
    for band_rows in (7, 16, 1000):
        monkeypatch.setattr(padding, "BAND_ROWS", band_rows)
        flat = padding._flat_and_saturated(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        np.testing.assert_array_equal(flat.astype(bool), expected)
    assert 0 < expected.sum() < expected.size  # the comparison sees both answers
