"""Is a download possible? Quick checks made before a library's slow retry loop, so that a
machine without network gets a clear error at once.

Sources call these through the module (``network.reachable(...)``) so that tests can replace
them with ``monkeypatch.setattr(explain.models.network, "reachable", ...)``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether the host of ``url`` answers on its port."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_offline_mode() -> bool:
    """Whether the Hugging Face hub is switched off (``HF_HUB_OFFLINE=1``)."""
    try:
        from huggingface_hub import is_offline_mode

        return bool(is_offline_mode())
    except ImportError:  # older huggingface_hub
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)


def hub_endpoint() -> str:
    """The Hugging Face hub's address (``HF_ENDPOINT`` or huggingface.co)."""
    from huggingface_hub import constants

    return getattr(constants, "ENDPOINT", "https://huggingface.co")


def hub_reachable() -> bool:
    """Whether the Hugging Face hub can be asked for files now."""
    return not hub_offline_mode() and reachable(hub_endpoint())


def torch_hub_file(url: str) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` keeps the file of ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
