"""The station's outputs: where each stored unit goes besides the database.

``build_outputs(config.outputs, station)`` gives an ``OutputDispatcher`` whose ``on_unit`` is the
pipeline's hook. Outputs: MQTT (``mqtt``), webhooks (``webhook``) and reject signals to the line's
PLC (``reject``: Modbus, log, or a plugin from the ``garment_qc.reject_signals`` entry points).
"""

from edge.outputs.base import Output, TransientError, Unreachable
from edge.outputs.config import OutputsConfig
from edge.outputs.dispatcher import OutputDispatcher, StationInfo, build_outputs, register_output

__all__ = [
    "Output", "OutputDispatcher", "OutputsConfig", "StationInfo", "TransientError", "Unreachable",
    "build_outputs", "register_output",
]
