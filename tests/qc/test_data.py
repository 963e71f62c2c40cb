"""Dataset readers, validation, the AITEX converter and the tiler, on tiny fixtures written here
and, where the shared dev folder exists, on the real AITEX strips."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from qc.data import DatasetError, open_dataset
from qc.data.blank import is_blank
from qc.data.convert import convert_aitex
from qc.data.info import dataset_info
from qc.data.tile import tile_dataset
from qc.data.validate import check_dataset
from tests.conftest import AITEX_DEV

REPO = Path(__file__).resolve().parents[2]
AITEX = AITEX_DEV


def _fabric(rng, h=64, w=96):
    return rng.integers(60, 200, (h, w), dtype=np.uint8)


def _write(path: Path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


@pytest.fixture
def mvtec(tmp_path, rng):
    root = tmp_path / "mvtec"
    for i in range(3):
        _write(root / "train" / "good" / f"{i:03d}.png", _fabric(rng))
    _write(root / "test" / "good" / "000.png", _fabric(rng))
    _write(root / "test" / "hole" / "000.png", _fabric(rng))
    mask = np.zeros((64, 96), np.uint8)
    mask[10:20, 30:40] = 255
    _write(root / "ground_truth" / "hole" / "000_mask.png", mask)
    return root


@pytest.fixture
def aitex_like(tmp_path, rng):
    """Two fabrics, AITEX names, one strip with two masks, one without a mask, white padding."""
    root = tmp_path / "aitex"
    for i in range(1, 6):
        strip = _fabric(rng, 64, 512)
        if i == 1:
            strip[:, :160] = 255  # the flat white end of a strip
        _write(root / "NoDefect_images" / "roll-a" / f"{i:04d}_000_00.png", strip)
    _write(root / "NoDefect_images" / "roll-b" / "0001_000_05.png", _fabric(rng, 64, 512))
    _write(root / "Defect_images" / "0010_002_00.png", _fabric(rng, 64, 512))
    _write(root / "Defect_images" / "0011_019_00.png", _fabric(rng, 64, 512))
    m1, m2 = np.zeros((64, 512), np.uint8), np.zeros((64, 512), np.uint8)
    m1[5:10, 300:310], m2[40:50, 100:104] = 255, 255
    _write(root / "Mask_images" / "0010_002_00_mask1.png", m1)
    _write(root / "Mask_images" / "0010_002_00_mask2.png", m2)
    return root


def test_mvtec_reader_lists_splits_types_and_masks(mvtec):
    ds = open_dataset(mvtec)
    assert ds.layout == "mvtec"
    assert ds.counts() == {"test": {"good": 1, "hole": 1}, "train": {"good": 3}}
    (hole,) = ds.select(label="defect")
    assert hole.defect_type == "hole" and hole.masks[0].name == "000_mask.png"


def test_plain_folder_and_manifest_readers(tmp_path, rng):
    folder = tmp_path / "plain"
    for i in range(2):
        _write(folder / f"{i}.jpg", _fabric(rng))
    assert open_dataset(folder).counts() == {"train": {"good": 2}}
    manifest = tmp_path / "plain" / "list.csv"
    manifest.write_text("path,label,split,defect_type,mask\n0.jpg,good,train,,\n1.jpg,defect,test,Oil stain,\n")
    ds = open_dataset(manifest)
    assert ds.counts() == {"test": {"oil_stain": 1}, "train": {"good": 1}}
    manifest.write_text("path,label\n0.jpg,maybe\n")
    with pytest.raises(DatasetError, match="list.csv:2"):
        open_dataset(manifest)


def test_aitex_reader_knows_fabrics_codes_and_double_masks(aitex_like):
    ds = open_dataset(aitex_like)
    assert ds.layout == "aitex"
    assert ds.fabrics() == {"00": {"good": 5, "defect": 2}, "05": {"good": 1, "defect": 0}}
    by_name = {r.path.name: r for r in ds.records}
    assert by_name["0010_002_00.png"].defect_type == "broken_end"
    assert len(by_name["0010_002_00.png"].masks) == 2
    assert by_name["0011_019_00.png"].defect_type == "fuzzyball" and not by_name["0011_019_00.png"].masks


def test_bad_datasets_are_refused_naming_the_file(mvtec, rng):
    (mvtec / "train" / "good" / "broken.png").write_bytes(b"not a png")
    _write(mvtec / "ground_truth" / "hole" / "999_mask.png", np.zeros((64, 96), np.uint8))
    _write(mvtec / "ground_truth" / "hole" / "000_mask.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(DatasetError) as info:
        check_dataset(open_dataset(mvtec))
    message = str(info.value)
    assert "broken.png" in message and "999_mask.png: mask without an image" in message
    assert "000_mask.png: mask is 10x10, its image 96x64" in message
    kept, _, problems = check_dataset(open_dataset(mvtec), skip_bad=True)
    assert len(problems) == 3
    assert sorted(str(r.path.relative_to(mvtec)) for r in kept.records) == [
        "test/good/000.png", "train/good/000.png", "train/good/001.png", "train/good/002.png"
    ]


def test_empty_split_and_missing_training_images_are_named(tmp_path, rng):
    root = tmp_path / "ds"
    (root / "train" / "good").mkdir(parents=True)
    _write(root / "test" / "good" / "0.png", _fabric(rng))
    _, _, problems = check_dataset(open_dataset(root), skip_bad=True)
    assert any("train: split is empty" in str(p) for p in problems)
    with pytest.raises(DatasetError, match="no images found"):
        open_dataset(tmp_path / "ds" / "train")


def test_info_reports_counts_sizes_and_coverage(mvtec):
    info = dataset_info(mvtec)
    assert info["good"] == 4 and info["defect"] == 1 and info["sizes"] == {"96x64": 5}
    assert info["mask_coverage"]["hole"]["mean_fraction"] == pytest.approx(100 / (64 * 96))
    assert info["problems"] == []


def test_convert_makes_the_protocol_split(aitex_like, tmp_path):
    out = tmp_path / "fabric00"
    summary = convert_aitex(aitex_like, out, fabric="00", train_good=3)
    assert summary["train/good"] == 3 and summary["test/good"] == 2
    assert sorted(p.name for p in (out / "train" / "good").iterdir()) == [
        "0001_000_00.png", "0002_000_00.png", "0003_000_00.png"
    ]
    union = cv2.imread(str(out / "ground_truth" / "broken_end" / "0010_002_00_mask.png"), 0)
    assert union[7, 305] == 255 and union[45, 101] == 255 and union.sum() == 255 * (50 + 40)
    assert summary["without_mask"] == ["0011_019_00.png"]
    ds = open_dataset(out)
    assert ds.counts()["test"] == {"broken_end": 1, "fuzzyball": 1, "good": 2}
    with pytest.raises(DatasetError, match="not empty"):
        convert_aitex(aitex_like, out, fabric="00", train_good=3)
    with pytest.raises(DatasetError, match="fabric 05 has 1 good"):
        convert_aitex(aitex_like, tmp_path / "x", fabric="05", train_good=3)


def test_tiles_keep_masks_aligned_and_skip_padding(aitex_like, tmp_path):
    converted = tmp_path / "conv"
    convert_aitex(aitex_like, converted, fabric="00", train_good=3)
    out = tmp_path / "tiles"
    summary = tile_dataset(converted, out, tile=64, overlap=0)
    # strip 0001 has 160 px of white padding: 2 whole tiles of it skipped (the third is mixed)
    assert summary["skipped_blank"] == 2
    mask_files = sorted((out / "ground_truth" / "broken_end").iterdir())
    assert [p.name for p in mask_files] == ["0010_002_00_y0_x256_mask.png", "0010_002_00_y0_x64_mask.png"]
    tile_mask = cv2.imread(str(mask_files[0]), 0)
    assert tile_mask[5:10, 300 - 256 : 310 - 256].min() == 255 and tile_mask.sum() == 255 * 50
    # tiles of the defect strip away from the defect are good fabric
    assert (out / "test" / "good" / "0010_002_00_y0_x0.png").exists()
    # the strip without a mask keeps its label on every tile
    assert len(list((out / "test" / "fuzzyball").iterdir())) == 512 // 64


def test_blank_criterion_separates_padding_from_fabric(rng):
    assert is_blank(np.full((64, 64), 255, np.uint8))
    assert not is_blank(_fabric(rng))


def test_cli_data_info_json(mvtec):
    out = subprocess.run(
        [sys.executable, "-m", "qc", "data", "info", str(mvtec), "--json"],
        cwd=REPO, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["splits"]["train"] == {"good": 3}


@pytest.mark.skipif(not AITEX.is_dir(), reason=f"{AITEX_DEV} is not present")
def test_real_aitex_counts_match_its_readme():
    info = dataset_info(AITEX)
    # the README's table: 20 good strips for fabrics 00-06, defects 7/38/10/0/6 and 1 for 08
    assert info["good"] == 100 and info["defect"] == 62
    assert {f: (r["good"], r["defect"]) for f, r in info["fabrics"].items()} == {
        "00": (20, 7), "02": (20, 38), "04": (20, 10), "05": (20, 0), "06": (20, 6), "08": (0, 1)
    }
    assert info["sizes"] == {"4096x256": 162}
    assert info["defects_without_mask"] == 1 and info["problems"] == []


@pytest.mark.skipif(not AITEX.is_dir(), reason=f"{AITEX_DEV} is not present")
def test_real_aitex_convert_fabric_00(tmp_path):
    summary = convert_aitex(AITEX, tmp_path / "f00", fabric="00", train_good=12)
    assert summary["train/good"] == 12 and summary["test/good"] == 8
    assert sum(summary["defects"].values()) == 7
    tiles = tile_dataset(tmp_path / "f00", tmp_path / "t00", tile=256, overlap=32)
    defect_tiles = sum(n for k, n in tiles["tiles"].items() if not k.endswith("/good"))
    assert defect_tiles >= 7 and tiles["skipped_blank"] > 0  # fabric 00 strips have white ends
    written = list((tmp_path / "t00" / "train" / "good").iterdir())
    assert not any(is_blank(cv2.imread(str(p))) for p in written[::10])


def test_convert_refuses_a_corrupt_strip_or_skips_it(aitex_like, tmp_path):
    (aitex_like / "NoDefect_images" / "roll-a" / "0005_000_00.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="0005_000_00.png"):
        convert_aitex(aitex_like, tmp_path / "a", fabric="00", train_good=3)
    assert not (tmp_path / "a").exists()  # nothing half-written
    summary = convert_aitex(aitex_like, tmp_path / "b", fabric="00", train_good=3, skip_bad=True)
    assert summary["test/good"] == 1 and "0005_000_00.png" in summary["skipped_bad"][0]


def test_merge_takes_train_good_of_each_source_and_never_test(tmp_path, rng):
    from qc.data.merge import merge_datasets

    for name in ("a", "b"):
        for split in ("train/good", "test/good"):
            folder = tmp_path / name / split
            folder.mkdir(parents=True)
            cv2.imwrite(str(folder / "0001.png"), rng.integers(0, 255, (16, 16), dtype=np.uint8))
    summary = merge_datasets([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
    merged = sorted(p.name for p in (tmp_path / "m" / "train" / "good").iterdir())
    assert merged == ["a__0001.png", "b__0001.png"] and summary["train_good"] == 2
    assert not (tmp_path / "m" / "test").exists()
    assert cv2.imread(str(tmp_path / "m" / "train" / "good" / "a__0001.png")) is not None

    with pytest.raises(DatasetError, match="not empty"):
        merge_datasets([tmp_path / "a"], tmp_path / "m")
    with pytest.raises(DatasetError, match="no train/good"):
        merge_datasets([tmp_path / "a" / "test"], tmp_path / "other")


def test_merge_carries_labelled_training_defects_with_their_masks(tmp_path, rng):
    from qc.data.merge import merge_datasets

    def write(path, shape):
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 255, shape, dtype=np.uint8))

    for name in ("a", "b"):
        write(tmp_path / name / "train" / "good" / "0001.png", (16, 16))
        write(tmp_path / name / "test" / "hole" / "0000.png", (16, 16))
        write(tmp_path / name / "ground_truth" / "hole" / "0000_mask.png", (16, 16))
    write(tmp_path / "a" / "train" / "hole" / "t0.png", (16, 16))
    write(tmp_path / "a" / "ground_truth" / "hole" / "t0_mask.png", (16, 16))
    write(tmp_path / "b" / "train" / "stain" / "t0.png", (16, 16))  # image label only: no mask
    summary = merge_datasets([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
    m = tmp_path / "m"
    assert summary["train_good"] == 2 and summary["train_defects"] == 2
    assert sorted(p.name for p in (m / "train" / "hole").iterdir()) == ["a__t0.png"]
    assert sorted(p.name for p in (m / "train" / "stain").iterdir()) == ["b__t0.png"]
    # Only training defects' masks come along, under the merged names; the test split's stay out.
    assert sorted(str(p.relative_to(m)) for p in (m / "ground_truth").rglob("*.png")) == ["ground_truth/hole/a__t0_mask.png"]
    assert not (m / "test").exists()
