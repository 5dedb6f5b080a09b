"""`localllm chat`: the Textual app.

The App holds the controller and the modal screens (model picker, settings,
help); the chat screen does the conversation. make_app() builds it from
whatever the caller hands in, so tests can pass a fake engine or the real one.
"""

from __future__ import annotations

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding

from localllm.errors import LocalLLMError
from localllm.tui.controller import ChatController
from localllm.tui.messages import ModelFailed, ModelReady
from localllm.tui.screens.attach import AttachScreen
from localllm.tui.screens.chat import ChatScreen
from localllm.tui.screens.help import HelpScreen
from localllm.tui.screens.model_picker import ModelChoice, ModelPicker
from localllm.tui.screens.settings import ChatSettings, SettingsScreen


class LocalLLMApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "localllm"
    BINDINGS = [
        Binding("f1,question_mark", "help", "Help"),
        Binding("f2", "pick_model", "Model"),
        Binding("f3", "settings", "Settings"),
        Binding("f4", "attach", "Docs"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, controller: ChatController, models=None, load_model=None, pull=None):
        super().__init__()
        self.controller = controller
        self.list_models = models or (lambda: [])  # -> list[ModelChoice]
        self.load_model = load_model  # name -> (resolved name, engine); runs in a worker
        self.pull = pull  # (name, progress) -> None; runs in a worker

    def on_mount(self) -> None:
        self.push_screen(ChatScreen(self.controller))

    @property
    def chat(self) -> ChatScreen:
        return next(s for s in self.screen_stack if isinstance(s, ChatScreen))

    def get_system_commands(self, screen):
        """The command palette (Ctrl+P) offers the app's own actions next to Textual's."""
        yield from super().get_system_commands(screen)
        yield SystemCommand("Switch model", "Choose a local model or download one (F2)",
                            self.action_pick_model)  # fmt: skip
        yield SystemCommand("Conversation settings", "System prompt, temperature, policy (F3)",
                            self.action_settings)  # fmt: skip
        yield SystemCommand("Attach documents", "Answer from an index or files, with sources (F4)",
                            self.action_attach)  # fmt: skip
        yield SystemCommand("Keys", "Every key binding (F1)", self.action_help)
        yield SystemCommand("New conversation", "Start a new chat (Ctrl+N)",
                            lambda: self.chat.run_action("new_conversation"))  # fmt: skip

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_pick_model(self) -> None:
        def chosen(name: str | None) -> None:
            if name:
                self.notify(f"loading {name}…")
                self.switch_model(name)

        self.push_screen(ModelPicker(self.list_models(), self.pull), chosen)

    @work(thread=True, exclusive=True, group="model")
    def switch_model(self, name: str) -> None:
        try:
            resolved, engine = self.load_model(name)
        except Exception as exc:  # a model that fails to load must not take the app down
            self.post_message(ModelFailed(str(exc)))
            return
        self.post_message(ModelReady(resolved, engine))

    def on_model_ready(self, message: ModelReady) -> None:
        self.controller.switch_model(message.name, message.engine)
        self.chat.refresh_status()
        self.notify(f"now using {message.name}; the conversation continues")

    def on_model_failed(self, message: ModelFailed) -> None:
        self.notify(message.error, title="model not loaded", severity="error", timeout=10)

    def action_attach(self) -> None:
        def chosen(spec: str | None) -> None:
            if spec is not None:
                self.attach_documents(spec)

        self.push_screen(AttachScreen(self.controller.session.conv.attached), chosen)

    @work(thread=True, exclusive=True, group="attach")
    def attach_documents(self, spec: str) -> None:
        """Off the UI thread: files are read and indexed before they can be searched."""
        try:
            said = self.controller.attach(spec)
        except LocalLLMError as exc:
            self.call_from_thread(self.notify, str(exc), title="not attached", severity="error",
                                  timeout=10)  # fmt: skip
            return
        self.call_from_thread(self.notify, said)

    def action_settings(self) -> None:
        conv = self.controller.session.conv
        current = ChatSettings(
            conv.system_prompt, conv.params.temperature, conv.params.max_tokens, conv.params.policy
        )

        def saved(result: ChatSettings | None) -> None:
            if result is None:
                return
            conv.system_prompt = result.system_prompt
            conv.params.temperature = result.temperature
            conv.params.max_tokens = result.max_tokens
            conv.params.policy = result.policy
            if conv.id is not None:
                self.controller.history.save_state(conv)
            self.notify("settings saved for this conversation")

        self.push_screen(SettingsScreen(current), saved)


def make_app(controller: ChatController, **kwargs) -> LocalLLMApp:
    return LocalLLMApp(controller, **kwargs)


def remote_choices(settings) -> list[ModelChoice]:
    """The configured remote engines' models, as MODEL@ENGINE (nothing is contacted here)."""
    from localllm.errors import ConfigError
    from localllm.remote_engines import configured

    try:
        engines = configured(settings)
    except ConfigError:
        return []  # the chat command already reported a bad config.toml
    return [ModelChoice(f"{c.model or ''}@{name}",
                        f"⇄ {c.model or '(its default model)'}@{name}  ·  on {c.shown}", True)
            for name, c in engines.items()]  # fmt: skip


def model_choices(settings) -> list[ModelChoice]:
    """Local models first (name, size, quant, context), then the remote engines' models, then
    catalogue models to download."""
    from localllm.catalog import load_catalog
    from localllm.store.registry import Registry

    stored = Registry(settings).all()
    choices = [
        ModelChoice(e.name, f"{e.name}  ·  {e.size / 2**20:.0f} MiB  ·  {e.quant or '?'}  ·  "
                    f"ctx {e.context_length or '?'}", True)
        for e in sorted(stored.values(), key=lambda e: e.name)
    ]  # fmt: skip
    choices += remote_choices(settings)
    have = {e.catalog_name for e in stored.values()}
    for spec in load_catalog().values():
        if spec.name not in have:
            choices.append(ModelChoice(spec.name, f"↓ {spec.name}  ·  {spec.parameters}  ·  "
                                       f"{spec.description}", False))  # fmt: skip
    return choices
