"""What the chat screen works on: the session, the history, and the loaded model.

Kept apart from the widgets so the app can be driven with any engine (tests
hand in a fake one for layout snapshots) and so model switching keeps the
conversation.
"""

from __future__ import annotations

from pathlib import Path

from localllm.chat.conversation import ChatParams, Conversation
from localllm.chat.history import History
from localllm.chat.session import ChatSession, Guardrails


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
        self.session = ChatSession(engine, conv, history, guardrails, self.watermark)

    def _blank(self) -> Conversation:
        d = self.defaults
        params = ChatParams(d.temperature, d.max_tokens, d.seed, d.policy)
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
        self.session = ChatSession(self.engine, self._blank(), self.history, self.guardrails,
                                   self.watermark)  # fmt: skip

    def open_conversation(self, conversation_id: int) -> None:
        conv = self.history.get(conversation_id)
        self.session = ChatSession(self.engine, conv, self.history, self.guardrails, self.watermark)

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
        self.session = ChatSession(engine, conv, self.history, self.guardrails, self.watermark)
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
