"""flashgen: flashcard markdown in, Anki decks out.

The pipeline, one module per stage::

    collect -> parse -> dedupe -> organise -> render -> package
                         (build wires them together; cli is a thin shell)
"""

__version__ = "0.1.0"  # first: modules below read it

import sys
import types

# The public names load their modules on first use (PEP 562), so that `flashgen --version`
# and `flashgen check` do not import the builder, the renderer and their dependencies.
_PUBLIC = {
    "BuildOptions": "build",
    "BuildReport": "build",
    "build": "build",
    "plan": "build",
    "Note": "dedupe",
    "dedupe": "dedupe",
    "Card": "model",
    "Diagnostic": "model",
    "FileMeta": "model",
    "FlashgenError": "model",
    "Location": "model",
    "ParsedFile": "model",
    "Severity": "model",
    "Variant": "model",
    "Book": "organise",
    "Chapter": "organise",
    "Settings": "model",
    "organise": "organise",
    "parse_bytes": "parse",
    "parse_file": "parse",
    "parse_text": "parse",
    "render_card": "render",
    "render_markdown": "render",
}


class _Package(types.ModuleType):
    """Importing a submodule binds it as an attribute of its package: ``flashgen.build`` would
    become the module, not the function. Three public functions share a name with their
    module; for those the binding is declined (``sys.modules`` still has the module)."""

    def __setattr__(self, name: str, value) -> None:
        if name in ("build", "dedupe", "organise") and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib

        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value  # once found, an ordinary attribute
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_PUBLIC))


__all__ = [
    "Book",
    "BuildOptions",
    "BuildReport",
    "Card",
    "Chapter",
    "Diagnostic",
    "FileMeta",
    "FlashgenError",
    "Location",
    "Note",
    "ParsedFile",
    "Settings",
    "Severity",
    "Variant",
    "build",
    "dedupe",
    "organise",
    "parse_bytes",
    "parse_file",
    "parse_text",
    "plan",
    "render_card",
    "render_markdown",
]
