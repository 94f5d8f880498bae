"""The model list route (``GET /v1/models``), in OpenAI's or Anthropic's shape."""

from __future__ import annotations

from aiohttp import web

from agentmesh.instrumentation.testing.fake_provider.handling import read_and_record
from agentmesh.instrumentation.testing.fake_provider.jsontypes import JSONObject
from agentmesh.instrumentation.testing.fake_provider.openrouter import upstream_provider
from agentmesh.instrumentation.testing.fake_provider.state import ProviderState

__all__ = ["ModelCatalog"]

_CREATED = 1_700_000_000
_CREATED_AT = "2023-11-14T22:13:20Z"


class ModelCatalog:
    """Lists the scripted models and the models requested so far."""

    def __init__(self, state: ProviderState) -> None:
        """Create the handler.

        Args:
            state: Scripts and the request record.
        """
        self._state = state

    def register(self, app: web.Application) -> None:
        """Add the route to an application.

        Args:
            app: The aiohttp application.
        """
        app.router.add_get("/v1/models", self.list_models)

    async def list_models(self, request: web.Request) -> web.Response:
        """Answer ``GET /v1/models``.

        Requests carrying an ``anthropic-version`` header (the Anthropic SDK's) get Anthropic's
        page shape; others get OpenAI's list.

        Args:
            request: The request.

        Returns:
            The model list.
        """
        await read_and_record(request, self._state)
        names = self._state.known_models()
        if "anthropic-version" in request.headers:
            data: list[object] = [
                {"type": "model", "id": name, "display_name": name, "created_at": _CREATED_AT}
                for name in names
            ]
            page: JSONObject = {
                "data": data,
                "has_more": False,
                "first_id": names[0] if names else None,
                "last_id": names[-1] if names else None,
            }
            return web.json_response(page)
        models: list[object] = [
            {
                "id": name,
                "object": "model",
                "created": _CREATED,
                "owned_by": (upstream_provider(name) or "agentmesh-fake").lower(),
            }
            for name in names
        ]
        return web.json_response({"object": "list", "data": models})
