"""The defect-type classifier: labelled regions, augmentation, a small network, training, export.

Inference is torch-free in qc/defect_types.py; everything here needs torch.
"""
