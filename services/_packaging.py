"""Build hooks (pyproject.toml `[tool.setuptools] cmdclass`): install `drive-warnings.pth` into site-packages.

eventlet warns that it is deprecated as soon as it is imported, which `nameko run` does before it reads any of
Drive's code or its logging configuration: the warning would be eight raw lines of stderr among the JSON log
lines of every start. A `.pth` file is the one place Python reads before any import of the program (whoever
starts it: `drive up`, compose, Kubernetes, by hand), so the filter lives there. What eventlet's status means
for the project: docs/operations.md.
"""

import os
import shutil

from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = "drive-warnings.pth"
SOURCE = os.path.join("services", PTH)


class BuildPy(build_py):
    """A wheel carries the file at its root (site-packages)."""

    def run(self) -> None:
        super().run()
        self.copy_file(SOURCE, os.path.join(self.build_lib, PTH))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH)]


class EditableWheel(editable_wheel):
    """An editable install (`make venv`) too: setuptools builds its wheel without build_py's outputs."""

    def _run_build_commands(self, dist_name, unpacked_wheel, build_lib, tmp_dir):  # type: ignore[no-untyped-def]
        result = super()._run_build_commands(dist_name, unpacked_wheel, build_lib, tmp_dir)
        shutil.copy(SOURCE, os.path.join(unpacked_wheel, PTH))
        return result
