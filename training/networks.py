"""The network a config asks for: the from-scratch U-Net, or the one over pretrained features."""

from __future__ import annotations

from torch import nn

from training.config import NetConfig


def build_network(config: NetConfig, *, pretrained: bool = False) -> nn.Module:
    """A fresh network; ``pretrained`` fills a backbone from its weights package (training only:
    a checkpoint brings its own backbone weights, so export and resume never need the package)."""
    if config.backbone == "none":
        from training.net import DefectUNet

        return DefectUNet(config)
    from training.backbone import load_pretrained

    if config.backbone == "lite0_unet":
        from training.hybrid_net import HybridUNet

        net = HybridUNet(config)
    else:
        from training.feature_net import PretrainedUNet

        net = PretrainedUNet(config)
    if pretrained:
        load_pretrained(net.backbone)
    return net


def backbone_record(config: NetConfig) -> dict | None:
    """What the model card says of the pretrained weights a network of ``config`` starts from."""
    if config.backbone == "none":
        return None
    from training.backbone import describe_weights

    return describe_weights()
