import subprocess
import sys


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys\n"
        "from localllm.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('llama_cpp', 'numpy', 'textual', 'huggingface_hub', 'gguf') "
        "if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout


def test_the_installed_package_carries_its_data_files():
    from importlib import resources

    package = resources.files("localllm")
    assert package.joinpath("tui/app.tcss").is_file()
    assert resources.files("quantize").joinpath("data/heldout_en.txt").is_file()  # --report's text
    from localllm.catalog import load_catalog

    assert "smollm2-135m" in load_catalog()
