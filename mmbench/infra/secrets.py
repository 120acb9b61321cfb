"""Keeping secrets out of logs, params, tags and error messages.

A storage or tracking URL may carry a password in its userinfo (``user:pw@host``) or in its
query (``?password=pw``). The URL is parsed with SQLAlchemy's :func:`~sqlalchemy.engine.make_url`,
the parser the storage itself connects with, so every password the storage accepts (one holding
``/``, ``@``, a space) is found. :func:`redact_url` is the one function that turns a URL into
something safe to print or record; :func:`redact_text` cleans a message (a driver's error, a
retry warning) of the URL's secrets wherever they appear, and of the secrets of every URL this
process opened (:func:`remember_secrets`), since a driver may echo one anywhere.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

MASK = "***"

#: Query keys whose values are credentials (libpq's ``password``, MLflow/HTTP tokens...).
SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "pass", "sslpassword", "secret", "token", "access_token",
                               "api_key", "apikey", "key", "auth", "authorization", "signature", "sig",
                               "x-amz-signature", "x-amz-credential", "x-amz-security-token"})

_known: set[str] = set()  # secrets of the URLs this process opened
_USERINFO = re.compile(r"(\w[\w+.-]*://[^/:@\s]*):\S*@")  # to the last "@": a password may hold "@" or "/"
_QUERY_SECRET = re.compile(r"([?&;](?:" + "|".join(re.escape(k) for k in sorted(SECRET_QUERY_KEYS)) + r")=)[^&\s'\"]*",
                           re.IGNORECASE)


def _parse(url: str):  # -> sqlalchemy.engine.URL | None (imported lazily)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except (ArgumentError, ValueError, TypeError):
        return None


def url_secrets(url: str) -> set[str]:
    """The password and secret query values of ``url``, raw and percent-encoded (empty for none).

    Example:
        >>> sorted(url_secrets("postgresql://bob@db/x?password=pw%2F9&sslmode=require"))
        ['pw%2F9', 'pw/9']
    """
    parsed = _parse(url)
    if parsed is None:
        return set()
    values: list[str] = [parsed.password] if parsed.password else []
    for key, value in parsed.query.items():
        if key.lower() in SECRET_QUERY_KEYS:
            values.extend([value] if isinstance(value, str) else value)
    found: set[str] = set()
    for value in values:
        if value:
            found |= {value, unquote(value), quote(value, safe=""), quote(value)}
    return {secret for secret in found if secret}


def redact_url(url: str) -> str:
    """``url`` with its password and secret query values replaced by ``***`` (safe to log or record).

    Example:
        >>> redact_url("postgresql://bob:s3/cret@db:5432/optuna")
        'postgresql://bob:***@db:5432/optuna'
        >>> redact_url("postgresql://bob@db/optuna?password=s3cret&sslmode=require")
        'postgresql://bob@db/optuna?password=***&sslmode=require'
        >>> redact_url("sqlite:///optuna.db")
        'sqlite:///optuna.db'
    """
    parsed = _parse(url)
    if parsed is None:  # not an SQLAlchemy-style URL (a path, journal://): mask what looks like a secret
        return _mask_patterns(url)
    secret_keys = [key for key in parsed.query if key.lower() in SECRET_QUERY_KEYS]
    if not parsed.password and not secret_keys:
        return url  # nothing to hide: shown exactly as given
    if secret_keys:
        parsed = parsed.update_query_dict({key: MASK for key in secret_keys}, append=False)
    # masked again as a browser would parse it: an http URL's password runs to the last '@'
    return _mask_patterns(parsed.render_as_string(hide_password=True).replace(quote(MASK, safe=""), MASK))


def remember_secrets(url: str) -> None:
    """Have :func:`redact_text` remove ``url``'s secrets from every later message of this process."""
    _known.update(url_secrets(url))


def redact_text(text: str, *urls: str) -> str:
    """``text`` (whitespace-normalised) without the secrets of ``urls`` or of any remembered URL.

    Example:
        >>> redact_text("cannot log in to postgresql://bob:pw9@db/x with pw9", "postgresql://bob:pw9@db/x")
        'cannot log in to postgresql://bob:***@db/x with ***'
    """
    message = " ".join(str(text).split())
    secrets = set(_known)
    for url in urls:
        secrets |= url_secrets(url)
    for secret in sorted(secrets, key=len, reverse=True):  # longest first: a secret may contain another
        message = message.replace(secret, MASK)
    return _mask_patterns(message)


def _mask_patterns(text: str) -> str:
    """Mask userinfo passwords and secret query values in any URL-looking part of ``text``."""
    return _QUERY_SECRET.sub(r"\1" + MASK, _USERINFO.sub(r"\1:" + MASK + "@", text))
