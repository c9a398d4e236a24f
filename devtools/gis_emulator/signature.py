"""Checks the XAdES-BES signature of an AppealsAsync request, as ГИС ЖКХ requires it (GOST R 34.10-2012 256).

Written independently of gis_sync's signer (``services/gis_sync/signing.py``); the GOST maths are
``gostcrypto``'s (``gost.py``). For a signed request (exportAppealRequest, importAnswerRequest) it checks:

1. ``ds:Signature`` is there (the schema puts it first in the request element).
2. SignedInfo names exclusive C14N and GOST R 34.10-2012 256 (``…:gostr34102012-gostr34112012-256``).
3. Every Reference: its URI ``#id`` names exactly one element of the envelope; its Transforms are
   enveloped-signature and/or exclusive C14N; its DigestMethod is GOST R 34.11-2012 256; the digest of
   the transformed element equals DigestValue. One reference must cover the request element itself,
   one the signature's own ``xades:SignedProperties`` (XAdES-BES).
4. KeyInfo holds one X.509 certificate, and it is the trusted one (byte for byte), within its validity.
5. SignedProperties' SigningCertificate names that certificate (GOST digest and serial number).
6. SignatureValue (s||r) verifies over exclusive C14N of SignedInfo with the certificate's public key.

Any failure raises ``SignatureError`` with a Russian message saying which check failed.
Not checked: certificate chains, revocation, qualified-certificate policies, SigningTime, and
algorithms other than the GOST 2012 256 ones above (real ГИС ЖКХ checks the chain up to an accredited CA).
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

from .gost import GostCertificate, streebog256

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
DIGESTS = frozenset({
    "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34112012-256",
    "http://www.w3.org/2001/04/xmldsig-more#gostr34112012-256",
})
SIGNATURES = frozenset({
    "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34102012-gostr34112012-256",
    "http://www.w3.org/2001/04/xmldsig-more#gostr34102012-gostr34112012-256",
})
ID_ATTRIBUTES = ("Id", "ID", "id")


class SignatureError(Exception):
    """The request's signature is missing or does not verify; the message says why (in Russian)."""


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _b64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{what}: не base64") from None


def _exc_c14n(el: etree._Element, transform: etree._Element | None = None) -> bytes:
    prefixes = None
    if transform is not None:
        incl = transform.find("{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces")
        if incl is not None and incl.get("PrefixList"):
            prefixes = incl.get("PrefixList", "").split()
    return etree.tostring(el, method="c14n", exclusive=True, with_comments=False, inclusive_ns_prefixes=prefixes)


class SignatureVerifier:
    """Verifies requests against one trusted GOST certificate (the organisation's, in ГИС's terms)."""

    def __init__(self, trusted: GostCertificate, now: Callable[[], datetime] | None = None) -> None:
        self.trusted = trusted
        self._now = now or (lambda: datetime.now(UTC))

    @classmethod
    def from_file(cls, path: str | Path, **kw: object) -> SignatureVerifier:
        return cls(GostCertificate.from_file(path), **kw)  # type: ignore[arg-type]

    def verify(self, request: etree._Element) -> None:
        """``request`` is the request element inside its (parsed) envelope."""
        sig = request.find(_q(DS, "Signature"))
        if sig is None:
            raise SignatureError("Запрос не подписан: в элементе запроса нет ds:Signature")
        si = sig.find(_q(DS, "SignedInfo"))
        if si is None:
            raise SignatureError("В подписи нет SignedInfo")
        c14n = si.find(_q(DS, "CanonicalizationMethod"))
        if c14n is None or c14n.get("Algorithm") != EXC_C14N:
            raise SignatureError("Неподдерживаемый метод канонизации SignedInfo (ожидается exc-c14n)")
        method = si.find(_q(DS, "SignatureMethod"))
        if method is None or method.get("Algorithm") not in SIGNATURES:
            raise SignatureError("Неподдерживаемый алгоритм подписи (ожидается ГОСТ Р 34.10-2012, 256 бит)")

        ids = self._ids(request.getroottree().getroot())
        props = sig.find(f"{_q(DS, 'Object')}/{_q(XADES, 'QualifyingProperties')}/{_q(XADES, 'SignedProperties')}")
        covers_request = covers_props = False
        for n, ref in enumerate(si.findall(_q(DS, "Reference")), start=1):
            target = self._check_reference(n, ref, sig, ids)
            covers_request |= target is request
            covers_props |= props is not None and target is props
        if not covers_request:
            raise SignatureError("Подпись не покрывает элемент запроса (нет ссылки на него в SignedInfo)")
        if props is None or not covers_props:
            raise SignatureError("Нет подписанных свойств XAdES (SignedProperties) или ссылки на них в SignedInfo")

        certs = sig.findall(f"{_q(DS, 'KeyInfo')}/{_q(DS, 'X509Data')}/{_q(DS, 'X509Certificate')}")
        if len(certs) != 1:
            raise SignatureError("В KeyInfo должен быть ровно один сертификат X.509")
        cert_der = _b64(certs[0].text, "X509Certificate")
        if cert_der != self.trusted.der:
            raise SignatureError("Сертификат подписи не является доверенным сертификатом организации")
        now = self._now()
        if not self.trusted.not_before <= now <= self.trusted.not_after:
            raise SignatureError("Срок действия сертификата подписи истёк или не наступил")
        self._check_signing_certificate(props)

        value = _b64((sig.findtext(_q(DS, "SignatureValue"))), "SignatureValue")
        if not self.trusted.verify(_exc_c14n(si), value):
            raise SignatureError("Значение подписи (SignatureValue) не прошло проверку ключом сертификата")

    @staticmethod
    def _ids(root: etree._Element) -> dict[str, list[etree._Element]]:
        ids: dict[str, list[etree._Element]] = {}
        for el in root.iter():
            if not isinstance(el.tag, str):
                continue
            for attr in ID_ATTRIBUTES:
                value = el.get(attr)
                if value is not None:
                    ids.setdefault(value, []).append(el)
        return ids

    @staticmethod
    def _check_reference(n: int, ref: etree._Element, sig: etree._Element,
                         ids: dict[str, list[etree._Element]]) -> etree._Element:
        uri = ref.get("URI") or ""
        if not uri.startswith("#"):
            raise SignatureError(f"Ссылка {n}: поддерживаются только ссылки на элемент по Id (URI=\"#…\")")
        found = ids.get(uri[1:], [])
        if len(found) != 1:
            raise SignatureError(f"Ссылка {n}: элемент с Id «{uri[1:]}» не найден или не единственный")
        target = found[0]
        transforms = ref.findall(f"{_q(DS, 'Transforms')}/{_q(DS, 'Transform')}")
        algorithms = [t.get("Algorithm") for t in transforms]
        if any(a not in (ENVELOPED, EXC_C14N) for a in algorithms) or EXC_C14N not in algorithms:
            raise SignatureError(
                f"Ссылка {n}: неподдерживаемые преобразования (ожидаются enveloped-signature и exc-c14n)")
        digest_method = ref.find(_q(DS, "DigestMethod"))
        if digest_method is None or digest_method.get("Algorithm") not in DIGESTS:
            raise SignatureError(
                f"Ссылка {n}: неподдерживаемый алгоритм хэширования (ожидается ГОСТ Р 34.11-2012, 256 бит)")
        node = copy.deepcopy(target)
        if ENVELOPED in algorithms:  # remove this signature from the copy, keeping the text around it
            for original, copied in zip(target.iter(), node.iter(), strict=True):
                if original is sig:
                    parent = copied.getparent()
                    if parent is not None:
                        prev = copied.getprevious()
                        if copied.tail:
                            if prev is not None:
                                prev.tail = (prev.tail or "") + copied.tail
                            else:
                                parent.text = (parent.text or "") + copied.tail
                        parent.remove(copied)
                    break
        exc = next(t for t in transforms if t.get("Algorithm") == EXC_C14N)
        expected = _b64(ref.findtext(_q(DS, "DigestValue")), f"Ссылка {n}: DigestValue")
        if streebog256(_exc_c14n(node, exc)) != expected:
            raise SignatureError(f"Ссылка {n} (URI {uri}): хэш не совпадает: подписанные данные изменены")
        return target

    def _check_signing_certificate(self, props: etree._Element) -> None:
        cert = props.find(f".//{_q(XADES, 'SigningCertificate')}/{_q(XADES, 'Cert')}")
        if cert is None:
            raise SignatureError("В SignedProperties нет SigningCertificate")
        method = cert.find(f"{_q(XADES, 'CertDigest')}/{_q(DS, 'DigestMethod')}")
        if method is None or method.get("Algorithm") not in DIGESTS:
            raise SignatureError("SigningCertificate: неподдерживаемый алгоритм хэша сертификата")
        digest = _b64(cert.findtext(f"{_q(XADES, 'CertDigest')}/{_q(DS, 'DigestValue')}"), "CertDigest")
        if digest != streebog256(self.trusted.der):
            raise SignatureError("SigningCertificate: хэш не совпадает с сертификатом в KeyInfo")
        serial = (cert.findtext(f"{_q(XADES, 'IssuerSerial')}/{_q(DS, 'X509SerialNumber')}") or "").strip()
        if serial != str(self.trusted.serial):
            raise SignatureError("SigningCertificate: серийный номер не совпадает с сертификатом в KeyInfo")
