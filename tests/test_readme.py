"""The README documents every option of the options flow (its option table's first column)."""

from __future__ import annotations

from pathlib import Path
import re

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

README = Path(__file__).parent.parent / "README.md"

_ROW = re.compile(r"^\|\s*`([a-z0-9_]+)`\s*\|")


def readme_options(text: str) -> set[str]:
    """The backticked names in the first column of the table under `### Options`."""
    section = text.split("\n### Options\n", 1)[1].split("\n#", 1)[0]
    return {match.group(1) for line in section.splitlines() if (match := _ROW.match(line))}


def test_readme_options_parser_reads_the_first_column_only() -> None:
    """Names in other columns or outside the section do not count."""
    text = """## Config
| `api_key` | x |
### Options
| Option | Default |
|---|---|
| `model` | `gpt-realtime-2.1` |
| voice | `marin` |
## Next
| `later` | x |
"""
    assert readme_options(text) == {"model"}


async def test_every_option_is_in_the_readme(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Adding an option to the flow without documenting it fails here."""
    result = await hass.config_entries.options.async_init(entry.entry_id)
    flow_options = {str(key) for key in result["data_schema"].schema}
    hass.config_entries.options.async_abort(result["flow_id"])
    documented = readme_options(README.read_text(encoding="utf-8"))
    assert flow_options - documented == set(), "options missing from the README's table"
    assert documented - flow_options == set(), "README documents options the flow lacks"
