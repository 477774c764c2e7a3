"""Ships the top-level data folders (tasks/, judges/, leaderboard/) inside the wheel.

They live at the top of the checkout so that users read and edit them there; the wheel carries a
copy under codal_bench/_data/, which codal_bench.resources finds when there is no checkout.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_DIRS = ("tasks", "judges", "leaderboard")


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).parent
        target = Path(self.build_lib) / "codal_bench" / "_data"
        for name in DATA_DIRS:
            if (root / name).is_dir():
                shutil.copytree(root / name, target / name, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithData})
