"""Hugging Face safetensors checkpoints to GGUF (tracked in its own issue).

This package stands alone: it never imports localllm.
"""
