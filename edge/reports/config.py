"""The ``reports:`` section: shifts, time zone, AQL plans and the 4-point limit."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from qc.strict import Strict

HHMM = r"^([01][0-9]|2[0-3]):(00|15|30|45)$"


class ShiftConfig(Strict):
    name: str = Field(min_length=1, max_length=64)
    start: str = Field(pattern=HHMM, description="local start time HH:MM (quarter hours)")
    end: str = Field(pattern=HHMM, description="local end time HH:MM; before start: past midnight")

    def minutes(self) -> tuple[int, int]:
        return tuple(int(t[:2]) * 60 + int(t[3:]) for t in (self.start, self.end))  # type: ignore[return-value]

    def contains(self, minute_of_day: int) -> bool:
        start, end = self.minutes()
        if start < end:
            return start <= minute_of_day < end
        return minute_of_day >= start or minute_of_day < end


class AqlConfig(Strict):
    critical: float = Field(0.0, ge=0, description="AQL in % for critical defects (0: none accepted)")
    major: float = Field(2.5, ge=0, description="AQL in % for major defects")
    minor: float = Field(4.0, ge=0, description="AQL in % for minor defects")


def _default_shifts() -> list[ShiftConfig]:
    return [
        ShiftConfig(name="A", start="06:00", end="14:00"),
        ShiftConfig(name="B", start="14:00", end="22:00"),
        ShiftConfig(name="C", start="22:00", end="06:00"),
    ]


class ReportsConfig(Strict):
    aql: AqlConfig = Field(default_factory=AqlConfig)
    inspection_level: Literal["I", "II", "III", "S-1", "S-2", "S-3", "S-4"] = Field(
        "II", description="ISO 2859-1 inspection level"
    )
    fourpoint_limit: float = Field(
        40.0, gt=0, description="4-point system: most points per 100 square yards that pass"
    )
    shifts: list[ShiftConfig] = Field(default_factory=_default_shifts, min_length=1)
    timezone: str | None = Field(
        None, description="IANA zone the shifts are in (e.g. Asia/Dhaka); None: the machine's"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _shifts_cover_the_day_once(self) -> ReportsConfig:
        for minute in range(0, 24 * 60, 15):
            owners = [s.name for s in self.shifts if s.contains(minute)]
            if len(owners) != 1:
                at = f"{minute // 60:02d}:{minute % 60:02d}"
                raise ValueError(
                    f"shifts must cover the day once; at {at} the shift is {owners or 'none'}"
                )
        return self
