"""Datasets in the layouts people already have: MVTec AD, AITEX, a manifest CSV, a plain folder."""

from qc.data.records import DatasetError, ImageRecord, Dataset
from qc.data.readers import open_dataset, LAYOUTS

__all__ = ["DatasetError", "ImageRecord", "Dataset", "open_dataset", "LAYOUTS"]
