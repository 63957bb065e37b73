"""The real consumer, ``inference_models`` (PyPI ``inference-models``), as a check on our packages.

``model``: :class:`ConsumerModel`, the adapter that loads a package through one of the consumer's own model
classes exactly as the consumer does and flattens its outputs into named arrays.
``probe``: what is asked of the consumer (parse manifests with its parsers, resolve and load a registered
model with ``AutoModel``); runs where ``inference_models`` is installed, in-process or as
``python -m backends.consumer.probe`` in the consumer's own venv (``.venv-consumer``, made by
scripts/setup_consumer.sh).
``bridge``: finds that interpreter and calls the probe there.
"""

CONSUMER_MODULE = "inference_models"


def is_consumer_class(ref: str) -> bool:
    """Whether ``module:Class`` names one of the consumer's own model classes."""
    module = ref.partition(":")[0]
    return module == CONSUMER_MODULE or module.startswith(CONSUMER_MODULE + ".")
