"""The single-file executable's entry point: the same `main` the `localllm` script runs."""

from localllm.cli import main

if __name__ == "__main__":
    main()
