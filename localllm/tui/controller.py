"""What the chat screen works on: the session, the history, and the loaded model.

Kept apart from the widgets so the app can be driven with any engine (tests
hand in a fake one for layout snapshots) and so model switching keeps the
conversation.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from localllm.chat.conversation import ChatParams, Conversation
from localllm.chat.history import History
from localllm.chat.session import ChatSession, Guardrails
from localllm.errors import RequestError


def split_sources(spec: str) -> list[str]:
    """What to attach: one per line as stored, or as typed, shell-quoted where a path has
    spaces ('~/My Notes/a.pdf')."""
    if "\n" in spec:
        return spec.split("\n")
    try:
        return shlex.split(spec)
    except ValueError:  # an unclosed quote: take the words as they are
        return spec.split()


class ChatController:
    def __init__(
        self,
        engine,
        model_name: str,
        history: History,
        conversation: Conversation | None = None,
        guardrails: Guardrails | None = None,
        save_dir: Path | None = None,
        defaults: ChatParams | None = None,
        release=None,
        watermark=None,
        settings=None,
    ):
        self.engine = engine
        # Hands a replaced engine back to whoever loaded it (the model host); default: close.
        self.release = release or (lambda old: old.close() if hasattr(old, "close") else None)
        self.model_name = model_name
        self.history = history
        self.guardrails = guardrails
        self.save_dir = save_dir
        self.defaults = defaults or ChatParams()
        self.watermark = watermark  # a WatermarkSpec: every answer of the app is marked
        self.settings = settings  # where the watermark records the models it marked with
        conv = conversation or self._blank()
        self.grounder = None  # chat/grounding.Grounder: the conversation's attached documents
        self.session = self._session(conv)

    def _session(self, conv: Conversation) -> ChatSession:
        return ChatSession(self.engine, conv, self.history, self.guardrails, self.watermark,
                           self.grounder)  # fmt: skip

    def _blank(self) -> Conversation:
        d = self.defaults
        params = ChatParams(d.temperature, d.max_tokens, d.seed, d.policy, d.think)
        return Conversation(model=self.model_name, params=params)

    @property
    def backend(self) -> str:
        return getattr(self.engine, "backend", "CPU")

    @property
    def compute_threads(self) -> int:
        """CPU threads llama.cpp keeps busy while it generates (one when a GPU does the work)."""
        plan = getattr(self.engine, "plan", None)
        if plan is None:
            return 1
        return plan.n_threads if plan.n_gpu_layers == 0 else 1

    @property
    def window(self) -> int:
        return self.engine.n_ctx

    def context_used(self) -> int:
        """Tokens the conversation's current window takes (what the next prompt starts from)."""
        conv = self.session.conv
        if not conv.messages:
            return 0
        from localllm.chat.context import system_message

        return len(self.session.context.counter.render(system_message(conv) + conv.chat_messages()))

    def conversations(self) -> list[dict]:
        return self.history.list(200)

    def new_conversation(self) -> None:
        self._detach()
        self.session = self._session(self._blank())

    def open_conversation(self, conversation_id: int) -> None:
        """Open a stored conversation. Documents it had attached are not read here (that
        can take a while): the app attaches conv.attached again off the UI thread."""
        conv = self.history.get(conversation_id)
        self._detach()
        self.session = self._session(conv)

    def attach(self, spec: str) -> str:
        """Attach documents to the conversation: an index name, or files and folders
        (paths one per line, or separated by spaces); "" detaches. Returns what is attached
        now, to say to the user."""
        from localllm.chat.grounding import Grounder
        from localllm.config import Settings
        from localllm.index.indexing import open_sources
        from localllm.index.search import Retriever
        from localllm.progress import SilentProgress

        self._detach()
        conv = self.session.conv
        sources = [s for s in split_sources(spec) if s.strip()]
        said = "no documents attached"
        if sources:
            settings = self.settings or Settings.from_env()
            store, label, failed = open_sources(settings, sources, SilentProgress(),
                                                settings.cache_dir / "spool")  # fmt: skip
            self.grounder = Grounder(Retriever(store), label)
            said = f"answers draw on {label} ({store.passage_count()} passages)"
            if store.meta("embedding_model"):
                said += "; ranked by words only here (`localllm ask` uses its vectors too)"
            if failed:
                said += f"; {len(failed)} path(s) could not be read: {failed[0][0]}"
        conv.attached = "\n".join(sources)  # one per line: paths may hold spaces
        self.session.grounder = self.grounder
        if conv.id is not None:
            self.history.save_state(conv)
        return said

    def _detach(self) -> None:
        if self.grounder is not None:
            self.grounder.close()
        self.grounder = None
        self.session.grounder = None

    def delete_conversation(self, conversation_id: int) -> None:
        self.history.delete(conversation_id)
        if self.session.conv.id == conversation_id:
            self.new_conversation()

    def switch_model(self, name: str, engine) -> None:
        """Use another model for this conversation from the next turn on."""
        old, self.engine = self.engine, engine
        self.model_name = name
        conv = self.session.conv
        conv.model = name
        try:
            self.session = self._session(conv)
        except RequestError:  # --think/--no-think, and this model has no switch: its default
            conv.params.think = None
            self.session = self._session(conv)
        if self.watermark is not None and self.settings is not None:
            from localllm.watermarking import record_vocabulary, vocabulary_fingerprint

            record_vocabulary(self.settings, name, engine.apply(vocabulary_fingerprint))
        if conv.id is not None:
            self.history.save_state(conv)
        if old is not engine:
            self.release(old)

    def save_last_answer(self, text: str) -> Path:
        from localllm.store.integrity import write_text_atomically

        path = (self.save_dir or Path.cwd()) / "last-answer.md"
        write_text_atomically(path, text + "\n")
        return path
