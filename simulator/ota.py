"""The boot-time OTA check and activation (`Ota::CheckVersion`, `Ota::Activate`, `CheckNewVersion`).

The board posts its system information with its identity headers, stores the `websocket`
section of the reply in NVS, picks MQTT when the reply has no `websocket` section, and
activates in the firmware's retry loop while the reply asks for it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import hashlib
import hmac
import json
from typing import Any

from .board import Board
from .errors import OtaError
from .firmware import MAX_BOOT_FAILURES, DeviceState, boot_retry_delays, version_newer


@dataclass(slots=True)
class OtaResult:
    """A parsed OTA reply, section by section (every section is optional)."""

    body: dict[str, Any]
    websocket: dict[str, Any] | None = None
    mqtt: dict[str, Any] | None = None
    activation: dict[str, Any] | None = None
    server_time: dict[str, Any] | None = None
    firmware: dict[str, Any] | None = None


class Ota:
    """The OTA client of one board and what its last boot check stored."""

    def __init__(
        self,
        device: Board,
        url: str | None,
        *,
        activation_retry_delay: float,
        activation_error_delay: float,
        boot_retry_delay: float,
    ) -> None:
        """Check at `url` (the board's OTA URL); the delays are the firmware's retry waits."""
        self._device = device
        self.url = url
        self.activation_retry_delay = activation_retry_delay
        self.activation_error_delay = activation_error_delay
        self.boot_retry_delay = boot_retry_delay
        self.result: OtaResult | None = None
        self.uses_mqtt = False
        self.firmware_upgrade_url: str | None = None
        self.server_time_ms: int | None = None
        self.lose_replies = 0
        """Boot-check replies still to lose on the way (a Wi-Fi drop, a power cut): Home
        Assistant answered, the board stores nothing (`Ota::CheckVersion` parses and stores
        only a reply it read to the end) and the check fails."""
        self.boot_failures: list[str] = []  # the error alert of each failed boot check

    def http_headers(self) -> dict[str, str]:
        """Headers of the OTA and activation requests (Ota::SetupHttp)."""
        device = self._device
        headers = {
            "Activation-Version": "2" if device.serial_number else "1",
            "Device-Id": device.mac,
            "Client-Id": device.client_id,
            "User-Agent": f"{device.board_name}/{device.firmware_version}",
            "Accept-Language": device.language,
            "Content-Type": "application/json",
        }
        if device.serial_number:
            headers["Serial-Number"] = device.serial_number
        return headers

    def system_info(self) -> dict[str, Any]:
        """The OTA request body (Board::GetSystemInfoJson)."""
        device = self._device
        return {
            "version": 2,
            "language": device.language,
            "flash_size": 16777216,
            "minimum_free_heap_size": "123456",
            "mac_address": device.mac,
            "uuid": device.client_id,
            "chip_model_name": "esp32s3",
            "chip_info": {"model": 9, "cores": 2, "revision": 2, "features": 18},
            "application": {
                "name": "xiaozhi",
                "version": device.firmware_version,
                "compile_time": "2026-08-01T00:00:00Z",
                "idf_version": "v5.5.1",
                "elf_sha256": hashlib.sha256(device.firmware_version.encode()).hexdigest(),
            },
            "partition_table": [
                {"label": "nvs", "type": 1, "subtype": 2, "address": 36864, "size": 16384},
                {"label": "ota_0", "type": 0, "subtype": 16, "address": 1048576, "size": 6291456},
            ],
            "ota": {"label": "ota_0"},
            "display": {"monochrome": False, "width": 240, "height": 240},
            "board": {
                "type": device.board_type,
                "name": device.board_name,
                "manufacturer": "simulator",
                "ssid": "sim-wifi",
                "rssi": -50,
                "channel": 6,
                "ip": "127.0.0.1",
                "mac": device.mac,
            },
        }

    async def check_version(self) -> OtaResult:
        """POST the boot-time version check and apply the reply as the firmware does."""
        if self.url is None:
            raise OtaError("no OTA URL configured")
        session = await self._device.http()
        async with session.post(
            self.url, data=json.dumps(self.system_info()), headers=self.http_headers()
        ) as resp:
            if self.lose_replies > 0:
                self.lose_replies -= 1
                resp.close()
                raise OtaError("OTA reply lost")
            text = await resp.text()
            if resp.status != 200:
                raise OtaError(f"OTA status {resp.status}")
        try:
            body = json.loads(text)
        except ValueError as err:
            raise OtaError("OTA reply is not JSON") from err
        if not isinstance(body, dict):
            raise OtaError("OTA reply is not an object")
        result = OtaResult(body)
        for name in ("websocket", "mqtt", "activation", "server_time", "firmware"):
            section = body.get(name)
            if isinstance(section, dict):
                setattr(result, name, section)
        if result.websocket is not None:
            for key, value in result.websocket.items():
                if isinstance(value, (str, int)) and not isinstance(value, bool):
                    self._device.nvs_websocket[key] = value
        self.uses_mqtt = result.mqtt is not None or result.websocket is None
        if result.server_time is not None:
            timestamp = result.server_time.get("timestamp")
            offset = result.server_time.get("timezone_offset", 0)
            if isinstance(timestamp, (int, float)) and isinstance(offset, (int, float)):
                self.server_time_ms = int(timestamp + offset * 60_000)
        if result.firmware is not None:
            version, url = result.firmware.get("version"), result.firmware.get("url")
            current = self._device.firmware_version
            newer = isinstance(version, str) and version_newer(version, current)
            if isinstance(url, str) and url and (newer or result.firmware.get("force") == 1):
                self.firmware_upgrade_url = url
        self.result = result
        return result

    def activation_body(self) -> dict[str, Any]:
        """The `/activate` body: empty without an efuse serial number, an HMAC otherwise."""
        device = self._device
        challenge = ((self.result and self.result.activation) or {}).get("challenge", "")
        if not device.serial_number:
            return {}
        digest = hmac.new(device.hmac_key, str(challenge).encode(), hashlib.sha256).hexdigest()
        return {
            "algorithm": "hmac-sha256",
            "serial_number": device.serial_number,
            "challenge": challenge,
            "hmac": digest,
        }

    async def activate(self, max_attempts: int = 10) -> bool:
        """Ota::Activate in the firmware's retry loop: 202 waits, 200 succeeds."""
        activation = self.result.activation if self.result else None
        if not activation or "challenge" not in activation or self.url is None:
            return False
        url = self.url if self.url.endswith("/") else self.url + "/"
        session = await self._device.http()
        states = self._device.state_machine
        states.state = DeviceState.ACTIVATING
        self._device.changes.notify()
        try:
            for _ in range(max_attempts):
                async with session.post(
                    url + "activate",
                    data=json.dumps(self.activation_body()),
                    headers=self.http_headers(),
                ) as resp:
                    status = resp.status
                if status == 200:
                    return True
                delay = (
                    self.activation_retry_delay if status == 202 else self.activation_error_delay
                )
                await asyncio.sleep(delay)
            return False
        finally:
            states.state = DeviceState.IDLE
            self._device.changes.notify()

    async def boot(self, max_rounds: int = 10) -> OtaResult | None:
        """`CheckNewVersion`: check the version and activate until no `activation` comes.

        A failed check (any status but 200, or no JSON object) shows an error with the
        exclamation sound (recorded in `boot_failures`) and is tried again after 10, 20,
        40 ... s (`boot_retry_delay` doubled). After `MAX_BOOT_FAILURES` failures in a row the
        board stops checking and returns None: with no protocol from this boot's OTA reply,
        `InitializeProtocol` picks MQTT until the board is rebooted.
        """
        delays = boot_retry_delays(self.boot_retry_delay)
        failures = 0
        for _ in range(max_rounds + MAX_BOOT_FAILURES):
            try:
                result = await self.check_version()
            except OtaError as err:
                failures += 1
                if failures >= MAX_BOOT_FAILURES:
                    self.uses_mqtt = True
                    return None
                self.boot_failures.append(str(err))
                await asyncio.sleep(delays[failures - 1])
                continue
            failures = 0
            if result.activation is None:
                return result
            await self.activate()
        raise OtaError("still not activated")
