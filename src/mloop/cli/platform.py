"""The running command's Platform: built once per command, on first use, closed at its end."""

from __future__ import annotations

import click

from mloop.platform import Platform
from mloop.settings import Settings

_KEY = "mloop.platform"  # in the root click context's `meta`: one per command invocation


def command_platform(settings: Settings | None = None) -> Platform:
    """The platform of the command being run (`settings`: those of its first call).

    Outside a command (tests calling a command's function directly) a new Platform.
    """
    context = click.get_current_context(silent=True)
    if context is None:
        return Platform(settings)
    root = context.find_root()
    found = root.meta.get(_KEY)
    if found is None:
        found = root.meta[_KEY] = Platform(settings)
        root.call_on_close(found.close)
    return found
