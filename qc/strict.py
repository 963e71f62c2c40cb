"""The base of every configuration and card model: an unknown key is an error, never ignored, so a
misspelt setting is refused with its name instead of silently falling back to a default."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
