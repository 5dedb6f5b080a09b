"""The errors localllm shows to users.

Every message is one line that says what went wrong and what to do next. The
CLI prints them as `error: <message>` and exits 1; anything that is not a
LocalLLMError is a bug. Subclasses also derive from the matching builtin so
callers can catch them either way.
"""


class LocalLLMError(Exception):
    """Shown to the user as one line; the message says what to do next."""


class ModelNotFound(LocalLLMError, LookupError):
    """A model argument names nothing we know or have."""


class InvalidModelFile(LocalLLMError, ValueError):
    """A file that is not a usable GGUF model (wrong magic, truncated, unreadable)."""


class IntegrityError(LocalLLMError, ValueError):
    """Downloaded or stored bytes do not match their expected sha256."""


class FetchError(LocalLLMError, ConnectionError):
    """A model could not be fetched from any of its sources."""


class OfflineError(LocalLLMError, ConnectionError):
    """The network is needed but LOCALLLM_OFFLINE=1 forbids it."""


class CatalogError(LocalLLMError, ValueError):
    """models.toml is malformed; the message names the entry and field."""


class ChatTemplateError(LocalLLMError, ValueError):
    """The model has no usable chat template, or rendering it failed."""


class ModelLoadError(LocalLLMError, RuntimeError):
    """llama.cpp refused to load a model (out of memory, unsupported architecture)."""


class InsufficientSpace(LocalLLMError, OSError):
    """Not enough free disk space for a download or a write."""


class ContextOverflow(LocalLLMError, ValueError):
    """A prompt or conversation that leaves no room in the context window for an answer."""


class DocumentError(LocalLLMError, ValueError):
    """An input document that cannot be read (missing, empty, binary, no text in it)."""


class ConversationNotFound(LocalLLMError, LookupError):
    """A stored conversation that does not exist."""


class HubAccessError(LocalLLMError, PermissionError):
    """A gated or private repository we may not read."""


class ConfigError(LocalLLMError, ValueError):
    """config.toml (or a setting) holds a bad value; the message names the key."""


class UnsafePath(LocalLLMError, ValueError):
    """A name or path from outside (a hub header, a listing, a user) that would lead out of
    its folder."""


class GrammarError(LocalLLMError, ValueError):
    """A JSON schema (or grammar) that structured output cannot enforce; names the feature."""


class EngineBusy(LocalLLMError, RuntimeError):
    """Every slot is busy and the waiting queue is full: retry shortly."""


class ServerError(LocalLLMError, ConnectionError):
    """A localllm server that cannot be reached or answered with an error (`localllm ps`)."""


class RequestError(LocalLLMError, ValueError):
    """An API request the server cannot take as sent (bad messages, fields, options)."""


class EngineError(LocalLLMError, ConnectionError):
    """A named remote engine that cannot be reached, refused the key, or failed an answer."""


class DocumentIndexError(LocalLLMError, ValueError):
    """A document index that cannot be read, a name that is not allowed, an unknown index."""
