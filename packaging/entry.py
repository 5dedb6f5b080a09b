"""The single-file executable's entry point: the same `main` the `localllm` script runs."""

import multiprocessing

from localllm.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # `localllm chat` runs the model in a child process
    main()
