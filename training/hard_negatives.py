"""Hard negatives: where the network, as it is now, fires on the good training images.

Training crops centred there teach it that rare normal structure (a selvage, a padding edge, a
pattern repeat) is normal (training/data.py). Each search scores good images as the station would,
so its cost grows with their pixels: twelve AITEX strips are 228 station tiles, a few seconds, but a
fabric onboarded from thirty 2048x2048 photographs would be 2430 tiles, searched every 30 s of
training, and most of the time budget would go to searching instead of learning. A search therefore
scores at most ``data.hard_negative_search_tiles`` tiles' worth of images, taking them in turn from
where the previous search stopped; the images it skips keep the spots of their last search.
"""

from __future__ import annotations

from torch import nn

from training.config import TrainConfig
from training.data import AnomalyBatches, hot_spots
from training.station_scoring import infer_image, station_tiles

HARD_SPOTS_PER_IMAGE = 8
HARD_MIN_HEAT = 0.05


def images_to_search(tiles: list[int], start: int, budget_tiles: int) -> list[int]:
    """Image indices from ``start`` on, wrapping round, while their tiles fit ``budget_tiles``.

    At least one image, so an image larger than the budget is still searched in its turn; never
    the same image twice in one search.
    """
    if not tiles:
        return []
    picked, spent = [], 0
    for offset in range(len(tiles)):
        index = (start + offset) % len(tiles)
        if picked and spent + tiles[index] > budget_tiles:
            break
        picked.append(index)
        spent += tiles[index]
    return picked


def mine_hard_negatives(net: nn.Module, batches: AnomalyBatches, config: TrainConfig) -> None:
    """Score the next images in turn as the station would and remember where the network fires."""
    export = config.export
    tiles = [station_tiles(image, export.tile_px, export.overlap_px) for image in batches.images]
    searched = images_to_search(tiles, batches.hard_search_from, config.data.hard_negative_search_tiles)
    net.eval()
    fresh = []
    for index in searched:
        heatmap, _ = infer_image(net, batches.images[index], export)
        fresh += [(index, y, x) for y, x in hot_spots(heatmap, count=HARD_SPOTS_PER_IMAGE, min_heat=HARD_MIN_HEAT)]
    now_searched = set(searched)
    batches.hard_spots = [spot for spot in batches.hard_spots if spot[0] not in now_searched] + fresh
    if searched:
        batches.hard_search_from = (searched[-1] + 1) % len(batches.images)
