"""What weightpack may call as a module factory: a recipe's ``[model] factory`` (or a backend's ``factory``
option) and the ``factory`` a torch package's ``torch_config.json`` names when the package is loaded.

A factory is code weightpack runs with keyword arguments that come from a file (a recipe, or a package
downloaded from a registry). It must be a class, or a Python function (or a class's method), defined in
a module outside the standard library: your model's module or a model library's. Never a builtin
(``os:system``, ``builtins:eval``) or anything of the standard library (``subprocess:run``,
``shutil:rmtree``): those would run a command or touch files, never build a module. A standard-library
module is refused by name, before it is imported. Pure functions, tested without torch.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

ACCEPTED = "a class or a function of your model's module or a model library, e.g. 'my_nets:PNet'"


def _standard_library(module: str) -> bool:
    top = module.split(".", 1)[0]
    return top in sys.stdlib_module_names or top == "builtins"


def name_problem(ref: str) -> str | None:
    """The rule ``module:Name`` breaks before anything is imported, or None."""
    module, _, attr = str(ref).partition(":")
    if not module or not attr:
        return f"'{ref}' is not module:Name"
    if _standard_library(module):
        return f"'{ref}' names the standard library's {module.split('.')[0]}, which builds no model"
    return None


def factory_problem(ref: str, obj: Any) -> str | None:
    """The rule the imported factory ``obj`` (named ``ref``) breaks, or None."""
    function = obj.__func__ if inspect.ismethod(obj) else obj
    if not (inspect.isclass(function) or inspect.isfunction(function)):
        return f"'{ref}' is a {type(obj).__name__}, not a class or a Python function"
    module = getattr(function, "__module__", None) or ""
    if _standard_library(module):
        return f"'{ref}' is defined in {module}, a module of the standard library, which builds no model"
    return None


def load_factory(ref: str) -> Any:
    """Import the factory ``ref`` names, once both rules hold; UserModelError (exit 2) naming the broken
    one. Import errors are the caller's to word (a recipe's field, a package's config file)."""
    from backends.errors import UserModelError
    from backends.registry import load_object

    problem = name_problem(ref)
    obj = None if problem else load_object(ref)
    problem = problem or factory_problem(ref, obj)
    if problem:
        raise UserModelError(f"factory {problem} (accepted: {ACCEPTED})")
    return obj
