"""Kept for the job engine until it reads from `core.db` directly: the view loader and
the session clean-up it calls. New code imports from core.db / core.sessions."""

from core.db.sessions import discard_session, record_delivery
from core.db.views import GenerationGone, get_view, load_view, params_of, provider_label
from core.sessions import new_seed
from core.sessions import start as start_session

__all__ = [
    "GenerationGone",
    "discard_session",
    "get_view",
    "load_view",
    "new_seed",
    "params_of",
    "provider_label",
    "record_delivery",
    "start_session",
]
