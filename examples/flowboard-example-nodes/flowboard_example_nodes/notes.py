"""Save note: posts each item's text to a notes service, with a credential type of its own.

The service answers `POST {address}/notes` with a JSON body `{"text": ...}` and the header `X-Notes-Key`, with
`{"id": ...}`. This module imports only `flowboard.sdk` and the libraries it uses, as every node module does.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from flowboard.sdk import (
    Category,
    Context,
    CredentialField,
    CredentialType,
    Inputs,
    NodeError,
    NodeType,
    Outputs,
    secret_forms,
)


def _check(data: dict[str, str]) -> None:
    if not data["address"].startswith(("http://", "https://")):
        raise ValueError("Service address (address) starts with http:// or https://, e.g. https://notes.example.com")


#: A credential type: declared at module level, it joins the credentials page when Flowboard loads this module.
NOTES_KEY = CredentialType(
    "example_notes_key", "Notes service key",
    (CredentialField("address", "Service address", help="e.g. https://notes.example.com"),
     CredentialField("key", "API key", secret=True)),
    help="The address of your notes service and the API key it gave you.",
    check=_check,
)


class SaveNoteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credential: str = Field(description="The notes service to save to: a 'Notes service key' credential.",
                            json_schema_extra={"widget": "credential", "credential_types": ["example_notes_key"]})
    text: str = Field(description="What the note says, e.g. {{ item.text }}")


class SaveNote(NodeType):
    """Saves one note per item in a notes service and adds the new note's id to the item as `note_id`."""

    type = "example.save_note"
    title = "Save note"
    category = Category.integration
    icon = "sticky_note_2"
    description = "Saves each item's text as a note in a notes service."
    side_effects = True
    Config = SaveNoteConfig

    async def run(self, ctx: Context, config: SaveNoteConfig, inputs: Inputs) -> Outputs:
        login = await ctx.credential(config.credential)
        url = login["address"].rstrip("/") + "/notes"
        out = []
        for index, item, cfg in ctx.each(inputs["main"]):
            response = await ctx.http.post(url, json={"text": str(cfg.text)}, headers={"X-Notes-Key": login["key"]})
            if response.status_code >= 400:
                message = response.text[:200]
                for form in secret_forms(login["key"]):
                    message = message.replace(form, "***")
                raise NodeError(f"the notes service at {url} answered {response.status_code}: {message}",
                                item_index=index)
            out.append({**item, "note_id": response.json()["id"]})
        return out
