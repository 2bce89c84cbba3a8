"""Pretrained weights: the table of published weights (no torch), :class:`PretrainedCfg`, the
export format (``config.json``, safetensors, model card), saving, Hub download with integrity
checks, and upload. Building a model from weights is :mod:`resnet3d.models.pretrained`'s job:
this package never imports the model code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._utils import lazy_attribute

# Public name -> module that defines it; loaded on first use.
_EXPORTS = {
    "CCII_LABELS": "table",
    "Metric": "table",
    "PretrainedEntry": "table",
    "get_pretrained": "table",
    "list_pretrained": "table",
    "recipe_commands": "table",
    "register_pretrained": "table",
    "table_markdown": "table",
    "unregister_pretrained": "table",
    "SOURCES": "cfg",
    "PretrainedCfg": "cfg",
    "CONFIG_NAME": "export_format",
    "EXPORT_FILES": "export_format",
    "FORMAT_VERSION": "export_format",
    "MODEL_CARD_NAME": "export_format",
    "WEIGHTS_NAME": "export_format",
    "config_document": "export_format",
    "document_cfg": "export_format",
    "entry_from_export": "export_format",
    "read_export_config": "export_format",
    "save_pretrained": "save",
    "push_to_hub": "upload",
    "upload_export": "upload",
    "hub_cache_dir": "download",
    "hub_download": "download",
    "hub_endpoint": "download",
    "hub_offline": "download",
    "verify_cached_blob": "download",
    "verify_sha256": "download",
    "FIRST_CONV": "state_dict",
    "adapt_input_conv": "state_dict",
    "check_state_dict": "state_dict",
    "read_safetensors": "state_dict",
    "metrics_from_evaluation": "evaluation",
    "render_model_card": "model_card",
    "write_model_card": "model_card",
}
__all__ = [
    "CCII_LABELS",
    "CONFIG_NAME",
    "EXPORT_FILES",
    "FIRST_CONV",
    "FORMAT_VERSION",
    "MODEL_CARD_NAME",
    "SOURCES",
    "WEIGHTS_NAME",
    "Metric",
    "PretrainedCfg",
    "PretrainedEntry",
    "adapt_input_conv",
    "check_state_dict",
    "config_document",
    "document_cfg",
    "entry_from_export",
    "get_pretrained",
    "hub_cache_dir",
    "hub_download",
    "hub_endpoint",
    "hub_offline",
    "list_pretrained",
    "metrics_from_evaluation",
    "push_to_hub",
    "read_export_config",
    "read_safetensors",
    "recipe_commands",
    "register_pretrained",
    "render_model_card",
    "save_pretrained",
    "table_markdown",
    "unregister_pretrained",
    "upload_export",
    "verify_cached_blob",
    "verify_sha256",
    "write_model_card",
]

if TYPE_CHECKING:
    from .cfg import SOURCES, PretrainedCfg
    from .download import (
        hub_cache_dir,
        hub_download,
        hub_endpoint,
        hub_offline,
        verify_cached_blob,
        verify_sha256,
    )
    from .evaluation import metrics_from_evaluation
    from .export_format import (
        CONFIG_NAME,
        EXPORT_FILES,
        FORMAT_VERSION,
        MODEL_CARD_NAME,
        WEIGHTS_NAME,
        config_document,
        document_cfg,
        entry_from_export,
        read_export_config,
    )
    from .model_card import render_model_card, write_model_card
    from .save import save_pretrained
    from .state_dict import FIRST_CONV, adapt_input_conv, check_state_dict, read_safetensors
    from .table import (
        CCII_LABELS,
        Metric,
        PretrainedEntry,
        get_pretrained,
        list_pretrained,
        recipe_commands,
        register_pretrained,
        table_markdown,
        unregister_pretrained,
    )
    from .upload import push_to_hub, upload_export


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


def __dir__() -> list[str]:
    return __all__
