"""Trigger configs: how a camera's frames become units, chosen per camera by ``mode``.

Kept apart from the trigger code so edge.config can import it without loading OpenCV or paho.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from edge.line.mqtt_config import MqttBrokerConfig
from qc.strict import Strict


class FrameTriggerConfig(Strict):
    """Every frame is a unit (a camera fired by the line itself, or panels one per frame)."""

    mode: Literal["frame"] = "frame"


class IntervalTriggerConfig(Strict):
    """One unit every ``every_s`` seconds: the newest frame when the interval has elapsed."""

    mode: Literal["interval"]
    every_s: float = Field(gt=0, le=86_400, description="seconds between two units")


Roi = tuple[
    Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)],
    Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)],
]


class PresenceTriggerConfig(Strict):
    """A unit is something entering and then leaving a region of interest, found by its difference
    from a background learned, slowly, from the frames with nothing present."""

    mode: Literal["presence"]
    roi: Roi | None = Field(
        None, description="[x, y, width, height] in pixels watched for units; None: the whole frame"
    )
    diff_threshold: int = Field(
        30, ge=1, le=255, description="levels (0-255) a pixel must differ from the background, in any "
        "colour channel, to count as changed"
    )
    on_fraction: float = Field(
        0.2, gt=0, le=1, description="share of the ROI changed above which something is present"
    )
    off_fraction: float = Field(
        0.05, ge=0, lt=1, description="share of the ROI changed below which it has gone"
    )
    min_frames: int = Field(
        2, ge=1, le=1000, description="frames in a row above on_fraction before a unit starts"
    )
    off_frames: int = Field(
        1, ge=1, le=1000, description="frames in a row below off_fraction before a unit ends"
    )
    background_rate: float = Field(
        0.05, ge=0, le=1, description="share of each empty frame blended into the background "
        "(follows slow light changes; 0: the first frame stays the background)",
    )
    pick: Literal["best", "stitch"] = Field(
        "best", description="best: one frame per unit; stitch: its frames one under the other "
        "(a unit passing under a line camera)",
    )
    best_by: Literal["coverage", "sharpness"] = Field(
        "coverage", description="pick=best: the frame whose ROI is most covered by the unit, or "
        "the sharpest (variance of the Laplacian); each breaks the other's ties",
    )
    max_frames: int = Field(
        64, ge=1, le=10_000, description="pick=stitch: most frames stitched into one unit; later "
        "frames of the same unit are counted, not stitched",
    )
    max_present_frames: int = Field(
        3000, ge=2, le=1_000_000, description="a unit present this long is closed and the "
        "background relearned from the current frame (a lasting light change, a stopped belt)",
    )
    analysis_width_px: int = Field(
        160, ge=16, le=4096, description="the ROI is compared at this width (speed; the unit "
        "keeps the full frame)",
    )

    @model_validator(mode="after")
    def _hysteresis(self) -> PresenceTriggerConfig:
        if self.off_fraction >= self.on_fraction:
            raise ValueError(
                f"off_fraction ({self.off_fraction}) must be below on_fraction ({self.on_fraction})"
            )
        return self


class MqttTriggerConfig(MqttBrokerConfig):
    """Trigger messages from an MQTT broker on ``qc/<line>/<station>/trigger``; the broker's
    login and TLS as for the MQTT output."""

    reconnect_max_s: float = Field(
        30.0, ge=1, le=3600, description="longest wait between two tries to reach the broker"
    )


class ExternalTriggerConfig(Strict):
    """Frames flow continuously; a request (REST or MQTT) makes the next frame a unit."""

    mode: Literal["external"]
    max_wait_s: float = Field(
        5.0, gt=0, le=3600, description="a request that no frame answered within this is dropped "
        "and counted (the source was down)",
    )
    max_pending: int = Field(
        100, ge=1, le=100_000, description="requests waiting for a frame; more are refused"
    )
    mqtt: MqttTriggerConfig | None = Field(None, description="also listen for MQTT messages")


TriggerConfig = Annotated[
    Union[FrameTriggerConfig, IntervalTriggerConfig, PresenceTriggerConfig, ExternalTriggerConfig],
    Field(discriminator="mode"),
]
