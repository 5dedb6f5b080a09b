"""The Textual chat app: `localllm chat`. Only the CLI imports this package."""
