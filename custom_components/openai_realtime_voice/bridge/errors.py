"""One mapping of a device action's failures to the messages users see.

The integration's actions (`speak`, `ask`, `converse`) and the satellite's `start_conversation`
and `ask_question` all run a bridge action; a refusal reads the same from every one of them.
"""

from __future__ import annotations

from collections.abc import Awaitable

from homeassistant.exceptions import HomeAssistantError

from ..const import DOMAIN
from ..realtime import RealtimeError
from .core import BridgeBusyError, SpeechBridge


async def async_device_action[T](
    bridge: SpeechBridge,
    action: Awaitable[T],
    *,
    busy: type[HomeAssistantError] = HomeAssistantError,
) -> T:
    """Await a bridge action; its errors become translated messages naming the device.

    `device_busy` (raised as `busy`, e.g. the satellite's `SatelliteBusyError`) when the
    device already waits for an answer, `realtime_unavailable` when the session refuses or
    is gone.
    """
    placeholders = {"device": bridge.subentry.title}
    try:
        return await action
    except BridgeBusyError as err:
        raise busy(
            translation_domain=DOMAIN,
            translation_key="device_busy",
            translation_placeholders=placeholders,
        ) from err
    except RealtimeError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="realtime_unavailable",
            translation_placeholders=placeholders,
        ) from err
