"""Keeping secrets out of logs, params, tags and error messages.

One redaction function for every URL mmbench prints or records (storage, tracking server).
"""

from __future__ import annotations

import re


def redact_url(url: str) -> str:
    """Hide the password of a ``scheme://user:password@host`` URL (safe to log or print).

    Example:
        >>> redact_url("postgresql://bob:s3cret@db:5432/optuna")
        'postgresql://bob:***@db:5432/optuna'
    """
    return re.sub(r"(://[^/:@\s]*):[^/\s]*@", r"\1:***@", url)  # to the last '@': a password may hold a raw '@'
