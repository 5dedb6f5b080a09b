"""The model manager: which models are on disk, where they came from, how to get more."""
