"""``python -m flashgen``: the same command as ``flashgen``, for where the script is not on PATH."""

from .cli import run

run()
