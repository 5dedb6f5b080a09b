"""Conversations: the context-window manager, sqlite history, and chat turns on an engine."""
