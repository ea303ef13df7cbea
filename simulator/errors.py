"""The simulator's own failures."""

from __future__ import annotations


class SimulatorError(Exception):
    """Base class of the simulator's own failures."""


class OtaError(SimulatorError):
    """The OTA server did not answer 200 with a JSON object."""


class HelloTimeoutError(SimulatorError):
    """No acceptable server hello within the firmware's 10 s ("server timeout")."""


class DeviceCrashedError(SimulatorError):
    """The server hello lacked `transport`; real firmware dereferences NULL and reboots."""
