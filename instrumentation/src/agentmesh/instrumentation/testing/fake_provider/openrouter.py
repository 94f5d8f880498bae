"""OpenRouter-style model names (``vendor/model``) and the upstream provider they name."""

from __future__ import annotations

__all__ = ["upstream_provider"]

_VENDORS: dict[str, str] = {
    "anthropic": "Anthropic",
    "cohere": "Cohere",
    "deepseek": "DeepSeek",
    "google": "Google",
    "meta-llama": "Meta",
    "microsoft": "Microsoft",
    "mistralai": "Mistral",
    "nvidia": "NVIDIA",
    "openai": "OpenAI",
    "qwen": "Alibaba",
    "x-ai": "xAI",
}


def upstream_provider(model: str) -> str | None:
    """Return the upstream provider an OpenRouter model name points at.

    Args:
        model: A model name, for example ``anthropic/claude-3.5-sonnet``.

    Returns:
        The provider's display name (``"Anthropic"``), or ``None`` when the name has no
        ``vendor/`` prefix. Unknown vendors are title-cased (``"acme-ai"`` → ``"Acme Ai"``).

    Example:
        >>> upstream_provider("meta-llama/llama-3.1-70b-instruct")
        'Meta'
        >>> upstream_provider("gpt-4o") is None
        True
    """
    vendor, slash, rest = model.partition("/")
    if not slash or not vendor or not rest:
        return None
    return _VENDORS.get(vendor.lower(), vendor.replace("-", " ").replace("_", " ").title())
