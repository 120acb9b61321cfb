"""Runtime infrastructure shared by search, training and tracking: retries, signals, devices, secrets."""

from mmbench._lazy import lazy_exports

_exports = lazy_exports(
    __name__,
    {
        "DevicePool": ".devices",
        "RetryingProxy": ".retry",
        "StopRequested": ".signals",
        "check_stop": ".signals",
        "graceful_stop": ".signals",
        "is_transient": ".retry",
        "plan_slots": ".devices",
        "redact_text": ".secrets",
        "redact_url": ".secrets",
        "retry_call": ".retry",
        "stop_requested": ".signals",
    },
)
__all__ = _exports.__all__
__getattr__ = _exports.__getattr__
__dir__ = _exports.__dir__
