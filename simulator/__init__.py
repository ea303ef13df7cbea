"""A xiaozhi-esp32 device simulator for checking a Home Assistant installation without hardware.

`simulator.device` reproduces the firmware on the wire, `simulator.speech` makes the audio it
speaks, and `python -m simulator` (or `scripts/simulate`) walks the whole flow a user meets.
"""
