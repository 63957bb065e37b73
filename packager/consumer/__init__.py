"""The real consumer, ``inference_models`` (PyPI ``inference-models``), as a check on our packages.

``model``: :class:`ConsumerModel`, the adapter that loads a package through one of the consumer's own model
classes exactly as the consumer does and flattens its outputs into named arrays.
``probe``: what is asked of the consumer (parse manifests with its parsers, resolve and load a registered
model with ``AutoModel``); runs where ``inference_models`` is installed, in-process or as
``python -m packager.consumer.probe`` in the consumer's own venv (``.venv-consumer``, made by
scripts/setup_consumer.sh).
``bridge``: finds that interpreter and calls the probe there.
``layout``: the recipe's per-backend ``rename`` / ``files``, the file names the consumer's classes look for.

:func:`load_model_class` is how every part of ``packager`` turns a ``model_class`` reference into a class:
weightpack's own and a user's classes come from :func:`backends.registry.load_model_class`; one of the
consumer's own classes comes wrapped in :class:`~packager.consumer.model.ConsumerModel`.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backends.base import PackageModel

CONSUMER_MODULE = "inference_models"


def is_consumer_class(ref: str) -> bool:
    """Whether ``module:Class`` names one of the consumer's own model classes."""
    module = ref.partition(":")[0]
    return module == CONSUMER_MODULE or module.startswith(CONSUMER_MODULE + ".")


def load_model_class(ref: str) -> type[PackageModel]:
    """The model class ``ref`` names, ready for ``from_pretrained``: a consumer class comes wrapped in
    :class:`~packager.consumer.model.ConsumerModel`, which loads and runs it as the consumer does; without
    the consumer installed that is exit 3 with how to install it."""
    from backends import registry

    if not is_consumer_class(ref):
        return registry.load_model_class(ref)
    from backends.errors import ConsumerUnavailableError
    from packager.consumer.bridge import HOW_TO_INSTALL
    from packager.consumer.model import ConsumerModel

    if importlib.util.find_spec(CONSUMER_MODULE) is None:
        raise ConsumerUnavailableError(
            f"model class '{ref}' is the consumer's own; {HOW_TO_INSTALL}, then run pack from that venv "
            "(.venv-consumer/bin/pack)"
        )
    return ConsumerModel.bind(registry.load_object(ref), ref)
