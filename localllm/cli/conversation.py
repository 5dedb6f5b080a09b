"""Opening a stored or new conversation for the CLI, and printing one streamed turn."""

from __future__ import annotations

import sys

from localllm.config import Settings


def history_path(settings: Settings):
    return settings.data_dir / "history.sqlite3"


def open_conversation(settings: Settings, *, model, system, continue_, conversation_id, no_save,
                      max_tokens, temperature, seed, policy, think=None):  # fmt: skip
    """The conversation to add a turn to (stored unless no_save), and its history."""
    from localllm.chat.conversation import ChatParams, Conversation
    from localllm.chat.history import History
    from localllm.config import DEFAULT_MODEL, load_user_config

    chat_config = load_user_config(settings).get("chat", {})
    continuing = continue_ or conversation_id is not None
    history = History(history_path(settings)) if continuing or not no_save else None
    if continuing:
        conv = history.get(conversation_id) if conversation_id is not None else history.latest()
        if no_save:
            # Read the stored turns for context, but write nothing of this one.
            history.close()
            history = None
        if system is not None:
            conv.system_prompt = system
        conv.params.max_tokens, conv.params.temperature, conv.params.seed = (
            max_tokens, temperature, seed,
        )  # fmt: skip
        if policy:
            conv.params.policy = policy
        if think is not None:
            conv.params.think = think
        return conv, history
    conv = Conversation(
        model=model or chat_config.get("model") or DEFAULT_MODEL,
        system_prompt=system if system is not None else chat_config.get("system_prompt", ""),
        params=ChatParams(
            temperature=temperature, max_tokens=max_tokens, seed=seed,
            policy=policy or chat_config.get("context_policy", "summary"), think=think,
        ),
    )  # fmt: skip
    return conv, history


def stream_turn(settings: Settings, engine, conv, history, text: str, progress, watermark=None,
                show_thinking: bool = False):  # fmt: skip
    """Send text, print the answer to stdout as it streams; returns the TurnDone event. A
    thinking model's reasoning goes to stderr, dimmed, with show_thinking; else it is only
    counted."""
    from localllm.chat.session import (
        ChatSession,
        ContextNotice,
        Retracted,
        TurnDone,
        guardrails_from_config,
    )
    from localllm.config import load_user_config
    from localllm.engine import Token
    from localllm.engine.base import Reasoning

    guard = guardrails_from_config(load_user_config(settings))
    session = ChatSession(engine, conv, history, guard, watermark)
    # With guardrails on, an answer may be thrown away: print it only once it is accepted.
    buffered = bool(guard.blocked_phrases)
    pending: list[str] = []
    done = None
    for event in session.send(text):
        if isinstance(event, ContextNotice):
            progress.message(event.event.text)
        elif isinstance(event, Retracted):
            pending.clear()
            progress.message(event.reason)
        elif isinstance(event, Token):
            if buffered:
                pending.append(event.text)
            else:
                sys.stdout.write(event.text)
                sys.stdout.flush()
        elif isinstance(event, Reasoning):
            if show_thinking:
                sys.stderr.write(
                    f"\x1b[2m{event.text}\x1b[0m" if sys.stderr.isatty() else event.text
                )
                sys.stderr.flush()
        elif isinstance(event, TurnDone):
            done = event
    if buffered:
        sys.stdout.write(done.message.content)
    sys.stdout.write("\n")
    sys.stdout.flush()
    if done.withheld:
        progress.message("the answer was withheld: every attempt contained a blocked phrase")
    if done.message.reasoning and not show_thinking:
        progress.message(f"the model reasoned for {done.stats.reasoning_tokens} tokens before "
                         "answering (--show-thinking shows it; kept in the history)")  # fmt: skip
    return done
