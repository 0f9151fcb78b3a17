"""The provider catalogue: where each known provider lives and how it wants to be called.

A configured `provider/model` whose prefix is listed here gets these defaults; any other prefix is
an OpenAI-compatible server that must say where it lives with `base_url`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Interface(str, Enum):
    """The wire protocol a provider speaks upstream."""

    OPENAI = "openai"  # POST {prefix}/chat/completions, Authorization: Bearer
    AZURE_OPENAI = "azure_openai"  # POST /openai/deployments/{id}/chat/completions?api-version=, api-key
    ANTHROPIC = "anthropic"  # POST {prefix}/messages, x-api-key + anthropic-version
    ECHO = "echo"  # answered inside the gateway, no upstream


@dataclass(frozen=True, slots=True)
class ProviderDefaults:
    base_url: str | None
    interface: Interface
    needs_key: bool = True
    # Without an access_key, the client's own credential is forwarded (Plano's passthrough_auth).
    passthrough_without_key: bool = False
    # Headers sent upstream unless the entry's `headers` sets them: (name, literal or $ENV).
    headers: tuple[tuple[str, str], ...] = ()
    # Serves OpenAI's Responses API only (`{prefix}/responses`), no Chat Completions.
    responses_only: bool = False
    # The path prefix a host-only base_url gets, for providers without a base URL of their own.
    default_prefix: str | None = None


CATALOGUE: dict[str, ProviderDefaults] = {
    "openai": ProviderDefaults("https://api.openai.com/v1", Interface.OPENAI),
    "anthropic": ProviderDefaults("https://api.anthropic.com/v1", Interface.ANTHROPIC),
    "gemini": ProviderDefaults(
        "https://generativelanguage.googleapis.com/v1beta/openai", Interface.OPENAI
    ),
    "mistral": ProviderDefaults("https://api.mistral.ai/v1", Interface.OPENAI),
    "deepseek": ProviderDefaults("https://api.deepseek.com/v1", Interface.OPENAI),
    "groq": ProviderDefaults("https://api.groq.com/openai/v1", Interface.OPENAI),
    "xai": ProviderDefaults("https://api.x.ai/v1", Interface.OPENAI),
    "together_ai": ProviderDefaults("https://api.together.xyz/v1", Interface.OPENAI),
    "ollama": ProviderDefaults("http://127.0.0.1:11434/v1", Interface.OPENAI, needs_key=False),
    # The other providers Plano knows without a base_url (its envoy template's clusters and its
    # CLI's provider defaults), all OpenAI-compatible.
    "moonshotai": ProviderDefaults("https://api.moonshot.ai/v1", Interface.OPENAI),
    "zhipu": ProviderDefaults("https://open.bigmodel.cn/api/paas/v4", Interface.OPENAI),
    "xiaomi": ProviderDefaults("https://api.xiaomimimo.com/v1", Interface.OPENAI),
    "digitalocean": ProviderDefaults("https://inference.do-ai.run/v1", Interface.OPENAI),
    "vercel": ProviderDefaults("https://ai-gateway.vercel.sh/v1", Interface.OPENAI),
    "openrouter": ProviderDefaults("https://openrouter.ai/api/v1", Interface.OPENAI),
    "edenai": ProviderDefaults("https://api.edenai.run/v3", Interface.OPENAI),
    # Plano requires a base_url for Qwen (DashScope's regions differ); a host alone gets
    # DashScope's OpenAI-compatible path.
    "qwen": ProviderDefaults(None, Interface.OPENAI, default_prefix="/compatible-mode/v1"),
    # A ChatGPT subscription (Plano's `chatgpt/*`): the Codex backend, Responses API only. The
    # client's own ChatGPT sign-in (Codex CLI's Bearer token) authorizes it, as in Plano, which also
    # sends `originator: codex_cli_rs` and the account id from $CHATGPT_ACCOUNT_ID when set.
    "chatgpt": ProviderDefaults("https://chatgpt.com/backend-api/codex", Interface.OPENAI, needs_key=False,
                                passthrough_without_key=True, responses_only=True,
                                headers=(("originator", "codex_cli_rs"), ("chatgpt-account-id", "$CHATGPT_ACCOUNT_ID"))),
    # Azure has no global host: each resource has its own, so base_url is required.
    "azure_openai": ProviderDefaults(None, Interface.AZURE_OPENAI),
    "echo": ProviderDefaults(None, Interface.ECHO, needs_key=False),
}

DEFAULT_AZURE_API_VERSION = "2024-10-21"
DEFAULT_ANTHROPIC_VERSION = "2023-06-01"
