"""TLS for ``serve``: an SSLContext from the configured certificate chain and key.

TLS 1.2 at least, the ssl module's secure default ciphers. The key file must not be readable
by others (a warning is printed otherwise: it is the server's identity).
"""
from __future__ import annotations

import logging
import os
import ssl
import stat

from ..config import ConfigError
from .settings import AuthSettings

log = logging.getLogger("registry.auth")


def server_ssl_context(settings: AuthSettings) -> ssl.SSLContext | None:
    if not settings.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        mode = os.stat(settings.tls_key).st_mode
        ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
    except FileNotFoundError as e:
        raise ConfigError(f"auth.tls_cert/tls_key: {e.filename}: no such file") from None
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(f"auth.tls_cert/tls_key: cannot load the certificate and key: {e}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("auth.tls_key %s is readable by group or others; chmod 600 it", settings.tls_key)
    return ctx
