"""TLS of the query and management ports: the server's context and the clients' pinned one.

Standard library only (the frontend's image carries no ``cryptography``). The certificate is
either the user's own (inventory ``clipper_tls_cert``/``clipper_tls_key``) or issued by the CA
clipper-deploy creates (``clipper_tls=self-signed``, :mod:`clipper_deploy.frontend.certificates`
and :mod:`clipper_deploy.orchestration.frontend_tls`); clients pin that CA's ``ca.pem``.
"""

from __future__ import annotations

import ssl

from clipper_deploy.errors import ClipperDeployError


class TLSConfigError(ClipperDeployError):
    """The certificate or key cannot be used; the message names the file and the fix."""


def server_context(cert: str, key: str | None = None) -> ssl.SSLContext:
    """The server-side context of ``cert`` and ``key`` (TLS 1.2 or newer); a missing,
    unreadable or mismatched file raises :class:`TLSConfigError` naming it."""
    key = key or cert
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for path, what in ((cert, "certificate"), (key, "private key")):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise TLSConfigError(
                f"TLS {what} {path} cannot be read ({exc.strerror or exc}); check "
                "clipper_tls_cert/clipper_tls_key (or --tls-cert/--tls-key) and that the "
                "frontend's user can read the file"
            ) from None
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "KEY_VALUES_MISMATCH" in str(exc):
            problem = f"the private key {key} does not belong to the certificate {cert}"
        else:
            problem = f"{cert} / {key} are not a PEM certificate and its private key ({reason})"
        raise TLSConfigError(
            f"TLS: {problem}; give the certificate (with its chain) and its own key"
        ) from None
    return context


def client_context(cafile: str | None = None) -> ssl.SSLContext:
    """A client context that verifies the frontend's certificate and name: against ``cafile``
    (the pinned CA) if given, else the system's trusted CAs."""
    return ssl.create_default_context(cafile=cafile)


def describe_tls_failure(exc: BaseException, url: str, cafile: str | None) -> str | None:
    """A sentence for a failed TLS connection to ``url``, or None when ``exc`` is not one."""
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ssl.SSLCertVerificationError):
        pinned = f"the CA in {cafile}" if cafile else "the system's trusted CAs"
        detail = reason.verify_message or str(reason)
        hint = (
            "the certificate has expired: issue a new one (clipper_tls=self-signed renews it at "
            "`frontend.start`)"
            if "expired" in detail
            else f"the frontend's certificate is not signed by {pinned} or does not name "
            "this address: pin the CA that issued it (clipper_tls_ca, or the ca.pem "
            "clipper-deploy created), or fix the certificate's names"
        )
        return f"TLS verification of {url} failed ({detail}): {hint}"
    if isinstance(reason, ssl.SSLError):
        return (
            f"TLS handshake with {url} failed ({reason.reason or reason}): the port may not "
            "speak TLS (is clipper_tls set for this frontend?)"
        )
    return None
