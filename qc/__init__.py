"""Domain core of the garment QC inspector: numpy, OpenCV, onnxruntime, pydantic. No torch."""

__version__ = "0.1.0"
