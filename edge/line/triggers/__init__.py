"""Triggers: how a camera's frames become units (``frame``, ``interval``, ``presence``,
``external``), chosen per camera by ``trigger.mode``.

Kept light on purpose: edge.config imports ``edge.line.triggers.config``; the code lives in
``edge.line.triggers.base`` (the registry and ``build_trigger``) and one module per mode.
"""
