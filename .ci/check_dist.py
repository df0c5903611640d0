"""Check what the built sdist and wheel in a folder (default: dist) hold.

The wheel: the whole package (every module of trio_lifespan/, the _cli
subpackage included), py.typed, the LICENSE, the metadata's author and project
URLs, the pytest plugin's entry point and the [client] extra, and nothing else
at the top level (no tests/, docs/, benchmarks/). The
sdist: the LICENSE, pyproject.toml and what the test suite reads (the tests and
their helpers, docs/ with its examples, README.md, .ci/run), and every file git
tracks when this runs in a git checkout.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "trio_lifespan"
URL_LABELS = {"Source", "Documentation", "Issues", "Changelog"}
SDIST_NEEDS = {
    "LICENSE",
    "README.md",
    "pyproject.toml",
    "setup.cfg",
    "setup.py",
    ".ci/run",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/apps.py",
    "tests/backends.py",
    "tests/frameworks.py",
    "docs/conf.py",
    "docs/examples/starlette_trio.py",
    "docs/examples/tutorial_test.py",
}


def only(paths: list[Path], kind: str) -> Path:
    if len(paths) != 1:
        sys.exit(f"expected one {kind}, found {[str(p) for p in paths]}")
    return paths[0]


def check_wheel(wheel: Path) -> list[str]:
    problems: list[str] = []
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = only(
            [Path(n).parent for n in names if n.endswith(".dist-info/METADATA")],
            "METADATA in the wheel",
        )
        metadata = Parser().parsestr(
            archive.read(f"{dist_info}/METADATA").decode("utf-8")
        )
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode("utf-8")
    source = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / PACKAGE).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    wanted = source | {f"{PACKAGE}/py.typed", f"{PACKAGE}/_cli/__init__.py"}
    problems += [f"wheel: {name} missing" for name in sorted(wanted - names)]
    licenses = [n for n in names if PurePosixPath(n).name == "LICENSE"]
    if not any(n.startswith(f"{dist_info}/") for n in licenses):
        problems.append(f"wheel: no LICENSE in {dist_info}/")
    tops = {PurePosixPath(n).parts[0] for n in names}
    problems += [
        f"wheel: unexpected top-level {top!r}"
        for top in sorted(tops - {PACKAGE, str(dist_info)})
    ]
    if not metadata.get("Author"):
        problems.append("wheel: no Author in METADATA")
    labels = {url.split(",")[0] for url in metadata.get_all("Project-URL") or []}
    problems += [
        f"wheel: no Project-URL {label!r}" for label in sorted(URL_LABELS - labels)
    ]
    if "[pytest11]\ntrio_lifespan = trio_lifespan._pytest_plugin" not in entry_points:
        problems.append(
            "wheel: no pytest11 entry point for trio_lifespan._pytest_plugin"
        )
    if "client" not in (metadata.get_all("Provides-Extra") or []):
        problems.append("wheel: no Provides-Extra: client in METADATA")
    if "LICENSE" not in (metadata.get_all("License-File") or []):
        problems.append("wheel: no License-File: LICENSE in METADATA")
    return problems


def git_files() -> set[str] | None:
    try:
        done = subprocess.run(
            ["git", "ls-files"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return set(done.stdout.splitlines()) - {".gitignore"}


def check_sdist(sdist: Path) -> list[str]:
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    top = only(sorted({PurePosixPath(m).parts[0] for m in members}), "top folder")
    names = {
        PurePosixPath(m).relative_to(top).as_posix() for m in members if m != str(top)
    }
    problems = [f"sdist: {name} missing" for name in sorted(SDIST_NEEDS - names)]
    tracked = git_files()
    if tracked is None:
        print("check_dist: not a git checkout; the sdist is not compared with git")
    else:
        missing = sorted(tracked - names)
        problems += [f"sdist: {name} (tracked by git) missing" for name in missing]
    problems += [
        f"sdist: {name} should not ship"
        for name in sorted(names)
        if "__pycache__" in name or name.startswith("docs/_build/")
    ]
    return problems


def main() -> None:
    dist = Path(sys.argv[1] if len(sys.argv) > 1 else "dist")
    wheel = only(sorted(dist.glob("*.whl")), "wheel")
    sdist = only(sorted(dist.glob("*.tar.gz")), "sdist")
    problems = check_wheel(wheel) + check_sdist(sdist)
    if problems:
        sys.exit("\n".join(problems))
    print(f"check_dist: {wheel.name} and {sdist.name} hold what they should")


if __name__ == "__main__":
    main()
