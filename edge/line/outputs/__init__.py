"""The station's outputs: where each stored unit goes besides the database.

``edge.line.outputs.dispatcher.build_outputs(config.outputs, station)`` gives an ``OutputDispatcher``
whose ``on_unit`` is the pipeline's hook. Outputs: MQTT (``mqtt``), webhooks (``webhook``) and
reject signals to the line's PLC (``reject``: Modbus, log, or a plugin from the
``garment_qc.reject_signals`` entry points).

Nothing is imported here, so ``edge.config`` can read ``edge.line.outputs.config`` without loading the
store, paho or pymodbus.
"""
