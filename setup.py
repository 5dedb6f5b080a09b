"""Ships the top-level models.toml inside the wheel as localllm/models.toml.

The catalogue lives at the repository root (where people edit it) but must be
package data at run time; setuptools has no declarative way to move a file
into a package, so build_py copies it.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithCatalogue(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "localllm" / "models.toml"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(__file__).parent / "models.toml", target)


setup(cmdclass={"build_py": BuildPyWithCatalogue})
