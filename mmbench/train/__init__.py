"""Training: model assembly, the loop (devices, AMP, metrics), guards, auxiliary losses, the feature cache."""

from mmbench._lazy import lazy_exports

_exports = lazy_exports(
    __name__,
    {
        "EpochReport": ".loop",
        "FitResult": ".loop",
        "MultimodalModel": ".model",
        "PeakMemory": ".memory",
        "TrainSettings": ".loop",
        "build_model": ".model",
        "classification_metrics": ".metrics",
        "count_parameters": ".model",
        "efficiency_metrics": ".efficiency",
        "evaluate": ".loop",
        "fit": ".loop",
        "predict_logits": ".loop",
        "preprocessors_for": ".model",
        "resolve_device": ".loop",
    },
)
__all__ = _exports.__all__
__getattr__ = _exports.__getattr__
__dir__ = _exports.__dir__
