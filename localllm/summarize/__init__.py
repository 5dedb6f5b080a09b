"""Offline summaries of documents of any length, in the document's own language."""
