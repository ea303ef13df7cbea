"""`look_at_camera`: a snapshot of an exposed camera or image entity, shown to the model.

The snapshot is taken through Home Assistant's camera (or image) API, scaled in an executor and
parked for the tool runner (the device bridge or the Assist agent) under the call's ID; the
runner adds it to the Realtime conversation as an `input_image` right before the tool's output.
It never enters the chat log, traces or storage.
"""

from __future__ import annotations

from typing import Final, override

from homeassistant.auth.permissions.const import POLICY_READ
from homeassistant.components import camera, image
from homeassistant.components.homeassistant.exposed_entities import async_should_expose
from homeassistant.core import Context, HomeAssistant, split_entity_id
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import config_validation as cv, llm
import probatio

from ..const import DOMAIN, LOGGER
from ..endpoint import DATA_HUB
from ..images import ImageError
from ..vision import async_scale
from . import policy
from .targets import TargetError
from .tools import _caller, refusal

LOOK_AT_CAMERA_TOOL: Final = "look_at_camera"
SNAPSHOT_TIMEOUT: Final = 10
CAMERA_DOMAINS: Final = ("camera", "image")

SNAPSHOT_IN_CONVERSATION: Final = (
    "The snapshot of {name} is now in the conversation as the latest image. "
    "Answer from what you see in it."
)


class LookAtCameraTool(llm.Tool):
    """Take a snapshot of an exposed camera or image entity and give it to the model."""

    name = LOOK_AT_CAMERA_TOOL
    title = "Look at a camera"
    description = (
        "Take a snapshot of a camera (or image) entity exposed to the assistant and look at it, "
        "e.g. to check whether a door is open or who is at the door. Pass the entity ID of an "
        "exposed camera.* or image.* entity."
    )
    parameters = probatio.Schema(
        {probatio.Required("entity_id", description="camera.* or image.* entity ID"): cv.string}
    )
    annotations = policy.READ_ONLY
    integration = DOMAIN

    def __init__(self, side: int, *, name: str = LOOK_AT_CAMERA_TOOL) -> None:
        """Offer the tool to one agent, whose snapshots are scaled to `side` px (long side).

        `name` is the tool's name in the API that offers it (Assist wants `<domain>__` names).
        """
        self.name = name
        self._side = side

    @override
    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> llm.ToolResult:
        """Refuse what is not an exposed camera; snapshot, scale and park the picture."""
        try:
            entity_id = (
                str(self.parameters(dict(tool_input.tool_args))["entity_id"]).strip().lower()
            )
        except probatio.Invalid as err:
            return refusal("invalid_arguments", f"Invalid arguments: {err}")
        # Unknown, unexposed and forbidden entities get the same answer.
        unknown = refusal("unknown_entity", f"There is no exposed camera {entity_id!r}.")
        state = hass.states.get(entity_id)
        if (
            state is None
            or split_entity_id(entity_id)[0] not in CAMERA_DOMAINS
            or not async_should_expose(hass, llm_context.assistant, entity_id)
        ):
            return unknown
        try:
            user = await _caller(hass, llm_context.context or Context())
        except TargetError as err:
            return refusal(err.code, str(err))
        if user is not None and not user.permissions.check_entity(entity_id, POLICY_READ):
            return unknown
        if (hub := hass.data.get(DATA_HUB)) is None:
            return refusal("image_input_off", "Image input is not available.")
        vision = hub.vision
        try:
            if split_entity_id(entity_id)[0] == "camera":
                content = (
                    await camera.async_get_image(hass, entity_id, timeout=SNAPSHOT_TIMEOUT)
                ).content
            else:
                content = (
                    await image.async_get_image(hass, entity_id, timeout=SNAPSHOT_TIMEOUT)
                ).content
            picture = await async_scale(hass, content, self._side)
        except (HomeAssistantError, ImageError) as err:
            LOGGER.debug("No snapshot of %s: %s", entity_id, err)
            return refusal("snapshot_failed", f"Could not get a picture from {state.name}.")
        vision.park(tool_input.id, picture)
        return llm.ToolResult(data={"result": SNAPSHOT_IN_CONVERSATION.format(name=state.name)})
