"""Paths as a report shows them: never an absolute path of this machine.

A path under the working directory is shown relative to it, one under the home directory as
``~/...``, any other absolute path relative to the working directory (``../shared/data``).
Relative paths and names that are not paths (``smollm2-135m-instruct``, ``minilm``) are shown as
given.

>>> shown_path("/work/main/runs/x/model", cwd="/work/main", home="/root")
'runs/x/model'
>>> shown_path("/work/shared/data", cwd="/work/main", home="/root")
'../shared/data'
>>> shown_path("/root/models/m", cwd="/work/main", home="/root")
'~/models/m'
>>> shown_command("gemlm eval -m gem:/work/main/runs/m --data-dir=/work/shared/data",
...               cwd="/work/main", home="/root")
'gemlm eval -m gem:runs/m --data-dir=../shared/data'
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..paths import DATA_ENV

# an absolute path: "/" starting a word, or after "=", ":", "@" or a quote ("http://x" is not one)
ABSOLUTE = re.compile(r"(?:(?<=^)|(?<=[\s=:@'\"(]))/(?:[\w.+~-]+/)*[\w.+~-]+/?")


def shown_path(path: str | os.PathLike, cwd: str | None = None, home: str | None = None) -> str:
    """``path`` relative to ``cwd`` (default: the working directory), or to ``~``."""
    text = str(path)
    if not os.path.isabs(text):
        return text
    here = os.path.abspath(cwd if cwd is not None else os.getcwd())
    home = os.path.abspath(home if home is not None else os.path.expanduser("~"))
    target = os.path.normpath(text)
    if _under(target, here):
        return os.path.relpath(target, here)
    if home != os.sep and _under(target, home):
        return "~/" + os.path.relpath(target, home)
    try:
        return os.path.relpath(target, here)
    except ValueError:  # another drive (Windows): nothing relative exists
        return Path(target).name


def _under(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def shown_command(command: str, cwd: str | None = None, home: str | None = None) -> str:
    """``command`` with every absolute path in it replaced by :func:`shown_path`."""
    return ABSOLUTE.sub(lambda m: shown_path(m.group(0), cwd, home), command)


def shown_data_dir(given: str | os.PathLike | None, resolved: Path) -> str:
    """The data folder as the user named it: the option's value, ``$GEMLM_DATA_DIR`` or the
    default, as a :func:`shown_path`."""
    if given is not None:
        return shown_path(given)
    if os.environ.get(DATA_ENV):
        return f"${DATA_ENV} = {shown_path(os.environ[DATA_ENV])}"
    return shown_path(resolved)
