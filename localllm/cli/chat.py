"""`localllm chat`: open the terminal chat app."""

from __future__ import annotations

import click

from localllm.cli.common import (
    command_host,
    ctx_option,
    engine_option,
    gpu_layers_option,
    mark_with,
    quiet_option,
    watermark_for_command,
    watermark_option,
)


@click.command()
@click.argument("model", required=False)
@click.option("-c", "--continue", "continue_", is_flag=True, help="Reopen the last conversation.")
@click.option("--id", "conversation_id", type=int, default=None, help="Reopen conversation ID.")
@ctx_option
@gpu_layers_option
@click.option(
    "--think/--no-think",
    default=None,
    help="Thinking models: reason before answering, or not (default: the model's).",
)
@watermark_option
@quiet_option
@engine_option
def chat(model, continue_, conversation_id, ctx, gpu_layers, think, watermark, quiet,
         engine_name):  # fmt: skip
    """Chat with a model in the terminal (Textual app).

    Enter sends, Ctrl+J adds a line, Escape stops an answer, F2 switches model,
    F3 sets the system prompt, F1 lists every key, Ctrl+Q quits.

    \b
    Examples:
      localllm chat
      localllm chat qwen2.5-1.5b
      localllm chat --continue
      localllm chat qwen3.5-9b@gpu
      localllm chat --watermark      # or [chat] watermark = "on" in config.toml
      localllm chat qwen3.5-2b --no-think
    """
    from localllm.chat.conversation import ChatParams
    from localllm.chat.history import History
    from localllm.chat.session import guardrails_from_config
    from localllm.cli.conversation import history_path
    from localllm.cli.progress import TerminalProgress
    from localllm.config import Settings, load_user_config
    from localllm.tui.app import make_app, model_choices
    from localllm.tui.controller import ChatController

    settings = Settings.from_env()
    config = load_user_config(settings)
    chat_config = config.get("chat", {})
    history = History(history_path(settings))
    conv = None
    if continue_ or conversation_id is not None:
        conv = history.get(conversation_id) if conversation_id is not None else history.latest()
        if think is not None:
            conv.params.think = think
    progress = TerminalProgress(quiet=quiet)
    wanted = model or (conv.model if conv else None)
    if engine_name:  # the first model only: F2 can still pick a local one
        from localllm.remote_engines import on_engine

        wanted = on_engine(wanted, engine_name)
    wanted = wanted or chat_config.get("model")
    # One host for the app's lifetime: a model switched away from is unloaded (keep-alive 0).
    host = command_host(settings, progress, ctx, gpu_layers, in_child_process=True)
    host.keep_alive = 0
    resolved = host.acquire(wanted)
    engine = resolved.engine
    for note in engine.plan.notes:
        progress.message(note)
    mark = watermark_for_command(settings, watermark or chat_config.get("watermark") == "on")
    mark_with(settings, mark, resolved, engine)
    in_use = {id(engine): resolved}
    # From here the app owns the terminal: later loads (F2) report nothing to stderr.
    progress.quiet, progress.bars = True, False
    defaults = ChatParams(
        temperature=float(chat_config.get("temperature", 0.7)),
        max_tokens=int(chat_config.get("max_tokens", 512)),
        policy=chat_config.get("context_policy", "summary"),
        think=think,
    )
    controller = ChatController(
        engine, resolved.name, history, conv, guardrails_from_config(config),
        save_dir=settings.data_dir, defaults=defaults,
        release=lambda old: host.release(in_use.pop(id(old))), watermark=mark,
        settings=settings,
    )  # fmt: skip
    if conv is None and chat_config.get("system_prompt"):
        controller.session.conv.system_prompt = chat_config["system_prompt"]

    def load(name: str):
        loaded = host.acquire(name)
        in_use[id(loaded.engine)] = loaded
        return loaded.name, loaded.engine

    def pull(name: str, reporter) -> None:
        from localllm.store.pull import pull as do_pull
        from localllm.store.pull import pull_target

        do_pull(settings, pull_target(settings, name), reporter)

    app = make_app(controller, models=lambda: model_choices(settings), load_model=load, pull=pull)
    try:
        app.run()
    finally:
        host.close()  # the model's process ends with the app
