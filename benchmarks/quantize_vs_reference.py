"""Our converter against llama.cpp's own convert_hf_to_gguf.py, on a transformers 5 checkpoint.

The reference side is built once under $LOCALLLM_TEST_CACHE/reference: the
sdist of the llama-cpp-python we pin (so the converter matches the llama.cpp
we run) and a virtual environment with what convert_hf_to_gguf.py imports
(CPU torch, transformers 5, sentencepiece). The starter model is exported as
a checkpoint, then loaded and saved again by transformers 5 in that
environment (bf16, tied embeddings, rope settings only under
`rope_parameters`): what people download today. Both converters then run on
it in child processes pinned to one core (wall time, peak RSS), and their
outputs are compared key by key, tensor by tensor (type, shape, bytes) and by
perplexity on the held-out English text and a Spanish paragraph.

    python benchmarks/quantize_vs_reference.py [--types f16,q8_0] [--rounds 3]

Prints one JSON object per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gguf
import numpy as np
from llama_sources import vendored_llama_cpp  # benchmarks/ is on the path of its scripts

from localllm.config import Settings
from localllm.quality import evaluate, heldout_text
from localllm.store.resolve import resolve_model
from quantize.export import export_checkpoint

REFERENCE_PACKAGES = ["torch==2.13.0", "transformers>=5", "sentencepiece", "safetensors",
                      "protobuf", "numpy"]  # fmt: skip
OURS = (
    "import sys; from pathlib import Path; from quantize.pipeline import quantize; "
    "from quantize.formats import output_type; "
    "quantize(Path(sys.argv[1]), Path(sys.argv[2]), output_type(sys.argv[3]))"
)
RESAVE = (
    "import sys, torch; from transformers import AutoModelForCausalLM, AutoTokenizer; "
    "m = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.bfloat16); "
    "m.save_pretrained(sys.argv[2]); AutoTokenizer.from_pretrained(sys.argv[1])"
    ".save_pretrained(sys.argv[2])"
)
# Written for this benchmark (public domain): a text in the language many of our users write.
SPANISH = """\
En el pueblo había una panadería que abría antes del amanecer. La dueña, Carmen, encendía el
horno a las cuatro y media, y a las seis el olor del pan recién hecho llegaba hasta la plaza.
Los vecinos decían que sus barras de pan tenían la corteza más crujiente de toda la comarca,
aunque ella siempre respondía que el secreto no estaba en la receta sino en la paciencia. Cada
mañana dejaba reposar la masa el tiempo justo, ni un minuto más ni uno menos, y anotaba en una
libreta la temperatura del obrador y la humedad del aire. Cuando su sobrino Javier volvió de la
ciudad, después de perder su trabajo en una oficina, empezó a ayudarla con los repartos. Al
principio se quejaba de madrugar, pero con las semanas aprendió a distinguir por el sonido si
una hogaza estaba bien cocida. Un invierno, una tormenta cortó la luz durante tres días. Carmen
sacó el viejo horno de leña que su abuelo había construido en el patio, y el pueblo entero
desayunó pan caliente mientras las carreteras seguían cortadas. Desde entonces, cada año, el
primer domingo de febrero, los vecinos celebran una pequeña fiesta alrededor de ese horno, con
música, chocolate y las historias que los mayores cuentan una y otra vez a los niños.
"""


def run(cmd: list, **kwargs) -> None:
    subprocess.run(cmd, check=True, **kwargs)


def reference_side(cache: Path) -> tuple[Path, Path]:
    """(python of the reference environment, llama.cpp source folder), made once."""
    cache.mkdir(parents=True, exist_ok=True)
    env = cache / "env"
    if not (env / "bin" / "python").exists():
        run([sys.executable, "-m", "venv", str(env)])
    ready = cache / "env-ready"
    if not ready.exists():
        run([str(env / "bin" / "python"), "-m", "pip", "install", "-q", *REFERENCE_PACKAGES])
        ready.touch()
    source = vendored_llama_cpp(cache, cache / "llama.cpp")
    return env / "bin" / "python", source


def convert(cmd: list, env: dict | None = None) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of one conversion in a child pinned to core 0."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: os.sched_setaffinity(0, {0}))  # fmt: skip
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:3]} failed:\n{stderr.decode(errors='replace')[-3000:]}")
    return time.perf_counter() - started, usage.ru_maxrss * 1024


def field_value(field) -> object:
    if field.types and field.types[0] == gguf.GGUFValueType.ARRAY:
        if len(field.data) > 64:  # vocabularies: compare a digest of every element
            elements = tuple(bytes(field.parts[i]) for i in field.data)
            return ("array", len(elements), hash(elements))
        return [field.contents(i) for i in range(len(field.data))]
    return field.contents()


def compare(ours: Path, reference: Path) -> dict:
    a, b = gguf.GGUFReader(ours), gguf.GGUFReader(reference)
    skip = ("GGUF.",)
    keys_a = {k: field_value(f) for k, f in a.fields.items() if not k.startswith(skip)}
    keys_b = {k: field_value(f) for k, f in b.fields.items() if not k.startswith(skip)}
    differing = sorted(k for k in keys_a.keys() & keys_b.keys() if keys_a[k] != keys_b[k])
    tensors_a, tensors_b = {t.name: t for t in a.tensors}, {t.name: t for t in b.tensors}
    same_bytes = sum(
        1 for name, t in tensors_a.items()
        if name in tensors_b and t.tensor_type == tensors_b[name].tensor_type
        and np.array_equal(np.asarray(t.data), np.asarray(tensors_b[name].data))
    )  # fmt: skip
    return {
        "keys_only_ours": sorted(keys_a.keys() - keys_b.keys()),
        "keys_only_reference": sorted(keys_b.keys() - keys_a.keys()),
        "keys_differing": {k: [str(keys_a[k])[:80], str(keys_b[k])[:80]] for k in differing},
        "tensors": len(tensors_b),
        "tensors_identical": same_bytes,
        "tensor_names_equal": tensors_a.keys() == tensors_b.keys(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", default="f16,q8_0")
    parser.add_argument("--rounds", type=int, default=3, help="conversions per side and type")
    args = parser.parse_args()
    cache = Path(os.environ.get("LOCALLLM_TEST_CACHE", Path.home() / ".cache/localllm-tests"))
    ref_python, source = reference_side(cache / "reference")
    starter = resolve_model(Settings.from_env(), None).path
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        exported = export_checkpoint(starter, work / "exported", dtype="BF16")
        checkpoint = work / "SmolLM2-135M-Instruct"
        run([str(ref_python), "-c", RESAVE, str(exported), str(checkpoint)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        config = json.loads((checkpoint / "config.json").read_text())
        print(json.dumps({"checkpoint": "transformers 5 re-save of the exported starter",
                          "transformers_version": config.get("transformers_version"),
                          "top_level_rope_theta": "rope_theta" in config,
                          "rope_parameters": config.get("rope_parameters")}))  # fmt: skip
        ref_env = {**os.environ, "PYTHONPATH": str(source / "gguf-py")}
        for kind in args.types.split(","):
            ours, theirs = work / f"ours-{kind}.gguf", work / f"reference-{kind}.gguf"
            ours_runs, ref_runs = [], []
            for _ in range(args.rounds):  # alternating, so a busy moment hits both sides
                ours_runs.append(convert([sys.executable, "-c", OURS, str(checkpoint),
                                          str(ours), kind]))  # fmt: skip
                ref_runs.append(convert([str(ref_python), str(source / "convert_hf_to_gguf.py"),
                                         str(checkpoint), "--outtype", kind, "--outfile",
                                         str(theirs)], env=ref_env))  # fmt: skip
            ours_s = statistics.median(s for s, _ in ours_runs)
            ref_s = statistics.median(s for s, _ in ref_runs)
            ours_rss, ref_rss = max(r for _, r in ours_runs), max(r for _, r in ref_runs)
            print(json.dumps({"bench": "convert", "type": kind, "ours_s": round(ours_s, 2),
                              "reference_s": round(ref_s, 2),
                              "speed_ratio": round(ref_s / ours_s, 2),
                              "ours_peak_rss_mb": round(ours_rss / 1e6),
                              "reference_peak_rss_mb": round(ref_rss / 1e6),
                              "rss_ratio": round(ours_rss / ref_rss, 2)}))  # fmt: skip
            print(json.dumps({"bench": "compare", "type": kind, **compare(ours, theirs)}))
            for name, text in (("heldout_en", heldout_text()), ("spanish", SPANISH * 3)):
                mine, ref = evaluate(ours, text), evaluate(theirs, text)
                print(json.dumps({"bench": "perplexity", "type": kind, "text": name,
                                  "ours": round(mine.perplexity, 3),
                                  "reference": round(ref.perplexity, 3),
                                  "ratio": round(mine.perplexity / ref.perplexity, 4),
                                  "tokens": mine.tokens_scored}))  # fmt: skip


if __name__ == "__main__":
    main()
