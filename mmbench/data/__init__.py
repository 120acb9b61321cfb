"""Data: providers' base, schema, preparation (splits, inference, fingerprints), tensors and storage."""

from mmbench._lazy import lazy_exports

_exports = lazy_exports(
    __name__,
    {
        "DatasetProvider": ".provider",
        "LoadContext": ".provider",
        "ModalityInfo": ".schema",
        "PreparedData": ".prepared",
        "RawData": ".provider",
        "SPLITS": ".provider",
        "Schema": ".schema",
        "SplitTensors": ".prepared",
        "fingerprint": ".fingerprint",
        "group_split": ".splits",
        "infer_kind": ".infer",
        "prepare": ".prepare",
        "stratified_split": ".splits",
    },
)
__all__ = _exports.__all__
__getattr__ = _exports.__getattr__
__dir__ = _exports.__dir__
