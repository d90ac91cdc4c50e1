"""Models: which model a name means, what an Ollama server has, and the run's Router.

``names``     pure name rules (design.md "Model names"), litellm's own provider list
``ollama``    Ollama's HTTP API (tags, show, ps): the one HTTP client, also for doctor/models
``routing``   the Router for one run, as a context manager that cleans up after itself
``failures``  litellm errors as exit status 3 with a hint
``context``   one window and one output cap per deployment for the whole run
``routed``    the smolagents model and litellm logger subclasses (imports the model stack)

Importing this package stays cheap: litellm and smolagents load only when a Routing is built.
"""

from local_brain.models.failures import backend_error_from
from local_brain.models.names import (
    OLLAMA_PREFIXES,
    RECOMMENDED_FAMILIES,
    choose_best_model,
    deployments_for,
    with_ollama_defaults,
)
from local_brain.models.ollama import (
    TAGS_TIMEOUT_S,
    InstalledModel,
    OllamaClient,
    ServerError,
    list_installed_models,
)
from local_brain.models.routing import COOLDOWN_S, Routing

__all__ = [
    "COOLDOWN_S",
    "OLLAMA_PREFIXES",
    "RECOMMENDED_FAMILIES",
    "TAGS_TIMEOUT_S",
    "InstalledModel",
    "OllamaClient",
    "Routing",
    "ServerError",
    "backend_error_from",
    "choose_best_model",
    "deployments_for",
    "list_installed_models",
    "with_ollama_defaults",
]
