"""The HTTP front end: OpenAI, Ollama and llama-server APIs over the model host."""
