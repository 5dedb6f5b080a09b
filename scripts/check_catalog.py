"""Maintainers: check every catalogue entry against the Hugging Face hub (needs network).

For each quant: the file exists in its repo at its revision, its size and sha256 are
what models.toml says (and what they are, where models.toml gives none), and the base
model's licence on its card is still the entry's. Prints one line per problem and exits
1 if there is any, so it can run on a schedule.

    python scripts/check_catalog.py [NAME ...]
"""

from __future__ import annotations

import sys

from huggingface_hub import HfApi
from huggingface_hub.utils import HfHubHTTPError

from localllm.catalog import load_catalog


def listed_files(api: HfApi, repo: str, revision: str | None) -> dict[str, tuple[int, str]]:
    info = api.model_info(repo, revision=revision, files_metadata=True)
    return {s.rfilename: (s.size, s.lfs.sha256 if s.lfs else None) for s in info.siblings}


def card_licence(api: HfApi, repo: str) -> str | None:
    card = api.model_info(repo).card_data
    return getattr(card, "license", None) if card else None


def check(api: HfApi, names: list[str], catalog=None) -> list[str]:
    problems, listings = [], {}
    catalog = catalog or load_catalog()
    for name in names or list(catalog):
        spec = catalog[name]
        for quant in spec.quants.values():
            where = f"{name}:{quant.quant} ({quant.repo}/{quant.file})"
            key = (quant.repo, quant.revision)
            try:
                if key not in listings:
                    listings[key] = listed_files(api, *key)
                files = listings[key]
            except HfHubHTTPError as exc:
                problems.append(f"{where}: the repo cannot be listed ({exc})")
                continue
            if quant.file not in files:
                problems.append(f"{where}: no such file at {quant.revision or 'main'}")
                continue
            size, sha256 = files[quant.file]
            if quant.size is not None and quant.size != size:
                problems.append(f"{where}: size {size}, models.toml says {quant.size}")
            if quant.sha256 is not None and quant.sha256 != sha256:
                problems.append(f"{where}: sha256 {sha256}, models.toml says {quant.sha256}")
            if quant.sha256 is None:
                print(f'{where}: unpinned; the hub lists size = {size}, sha256 = "{sha256}"')
        if spec.base_repo:
            try:
                licence = card_licence(api, spec.base_repo)
            except HfHubHTTPError as exc:
                problems.append(f"{name}: the card of {spec.base_repo} cannot be read ({exc})")
                continue
            if licence and licence != spec.license:
                problems.append(f"{name}: the card says licence {licence}, not {spec.license}")
    return problems


def main() -> None:
    problems = check(HfApi(), sys.argv[1:])
    for line in problems:
        print(line)
    print(f"{len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
