"""XAdES-BES signing of AppealsAsync requests with a GOST R 34.10-2012 (256) key, as ГИС ЖКХ requires.

The signed element is the request in the SOAP body (exportAppealRequest, importAnswerRequest: they
extend base:BaseType, whose first child may be ds:Signature); it gets ``Id="signed-data-container"``.
getStateRequest has no place for a signature and goes unsigned, as the published schema has it.

* Canonicalisation: exclusive XML C14N (``http://www.w3.org/2001/10/xml-exc-c14n#``).
* Digests: GOST R 34.11-2012 256 (Streebog), ``urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34112012-256``.
* Signature: GOST R 34.10-2012 256, ``…:gostr34102012-gostr34112012-256``; the value is s || r, big-endian
  (RFC 4491 / the CryptoPro XMLDSig profile), which OpenSSL's GOST engine verifies.
* XAdES-BES: SignedProperties with SigningTime and SigningCertificate (certificate digest, issuer, serial),
  referenced from SignedInfo; the certificate in KeyInfo/X509Data.

The GOST maths come from ``gostcrypto``; key and certificate are PEM/DER files as OpenSSL's GOST
engine writes them (PKCS#8 private key, X.509 certificate). A key inside a CryptoPro container or a
token is not read here: export it to PKCS#8 or put a signing proxy in front (docs/gis_sync.md).
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from pathlib import Path

import gostcrypto
from asn1crypto import core, pem, x509
from lxml import etree

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
DIGEST = "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34112012-256"
SIGNATURE = "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34102012-gostr34112012-256"
SIGNED_ID = "signed-data-container"

# GOST R 34.10-2012 256 parameter sets: the OIDs a key may name -> gostcrypto's curve names.
CURVES = {
    "1.2.643.2.2.35.1": "id-tc26-gost-3410-2012-256-paramSetB",  # CryptoPro-A
    "1.2.643.2.2.35.2": "id-tc26-gost-3410-2012-256-paramSetC",  # CryptoPro-B
    "1.2.643.2.2.35.3": "id-tc26-gost-3410-2012-256-paramSetD",  # CryptoPro-C
    "1.2.643.2.2.36.0": "id-tc26-gost-3410-2012-256-paramSetB",  # CryptoPro-XchA
    "1.2.643.2.2.36.1": "id-tc26-gost-3410-2012-256-paramSetD",  # CryptoPro-XchB
    "1.2.643.7.1.2.1.1.1": "id-tc26-gost-3410-2012-256-paramSetA",
    "1.2.643.7.1.2.1.1.2": "id-tc26-gost-3410-2012-256-paramSetB",
    "1.2.643.7.1.2.1.1.3": "id-tc26-gost-3410-2012-256-paramSetC",
    "1.2.643.7.1.2.1.1.4": "id-tc26-gost-3410-2012-256-paramSetD",
}
GOST_2012_256 = "1.2.643.7.1.1.1.1"
RDN_NAMES = {"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.9": "STREET",
             "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.4": "SN", "2.5.4.42": "GN", "2.5.4.12": "T",
             "1.2.840.113549.1.9.1": "E", "1.2.643.100.1": "OGRN", "1.2.643.100.3": "SNILS",
             "1.2.643.3.131.1.1": "INN", "1.2.643.100.4": "INNLE"}


def _der(data: bytes) -> bytes:
    return pem.unarmor(data)[2] if pem.detect(data) else data


def streebog256(data: bytes) -> bytes:
    return bytes(gostcrypto.gosthash.new("streebog256", data=data).digest())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _c14n(el: etree._Element) -> bytes:
    return etree.tostring(el, method="c14n", exclusive=True, with_comments=False)


def _rfc4514(name: x509.Name) -> str:
    parts = []
    for rdn in reversed(list(name.chosen)):
        for atv in rdn:
            oid = atv["type"].dotted
            value = str(atv["value"].native)
            for ch in ("\\", ",", "+", '"', "<", ">", ";", "="):
                value = value.replace(ch, "\\" + ch)
            parts.append(f"{RDN_NAMES.get(oid, oid)}={value}")
    return ",".join(parts)


class GostXadesSigner:
    """A ``Signer`` (gis_sync.soap) that signs with a GOST R 34.10-2012 (256) key."""

    def __init__(self, private_key: bytes, curve: str, certificate_der: bytes) -> None:
        self._key = bytearray(private_key)  # big-endian, as gostcrypto wants it
        self._curve = gostcrypto.gostsignature.CURVES_R_1323565_1_024_2019[curve]
        self.certificate_der = certificate_der
        cert = x509.Certificate.load(certificate_der)
        self.issuer = _rfc4514(cert.issuer)
        self.serial = cert.serial_number

    @classmethod
    def from_files(cls, key_path: Path, cert_path: Path) -> GostXadesSigner:
        seq = core.Sequence.load(_der(Path(key_path).read_bytes()))  # PKCS#8 PrivateKeyInfo
        alg = seq[1].native
        if alg["0"] != GOST_2012_256:
            raise ValueError(f"{key_path}: not a GOST R 34.10-2012 256-bit key (algorithm {alg['0']})")
        params = alg.get("1") or {}
        curve = CURVES.get(params.get("0") if isinstance(params, dict) else "")
        if curve is None:
            raise ValueError(f"{key_path}: unknown GOST parameter set")
        raw = seq[2].native
        if isinstance(raw, bytes) and len(raw) != 32:  # some writers wrap the key in one more OCTET STRING
            raw = core.OctetString.load(raw).native
        if not isinstance(raw, bytes) or len(raw) != 32:
            raise ValueError(f"{key_path}: unexpected private key encoding")
        # OpenSSL's GOST engine stores the key little-endian
        return cls(raw[::-1], curve, _der(Path(cert_path).read_bytes()))

    def _sign_value(self, data: bytes) -> bytes:
        digest = bytearray(streebog256(data)[::-1])  # the hash is read as a little-endian number
        signer = gostcrypto.gostsignature.new(gostcrypto.gostsignature.MODE_256, self._curve)
        rs = bytes(signer.sign(self._key, digest))  # r || s
        return rs[32:] + rs[:32]  # s || r

    def sign(self, envelope: etree._Element) -> etree._Element:
        body = envelope.find(f"{{{SOAP}}}Body")
        target = next((c for c in body if isinstance(c.tag, str)), None) if body is not None else None
        if target is None or etree.QName(target).localname == "getStateRequest":
            return envelope
        for old in target.findall(f"{{{DS}}}Signature"):
            target.remove(old)
        target.set("Id", SIGNED_ID)
        body_digest = streebog256(_c14n(target))  # before the signature goes in: the enveloped transform

        sid = "xmldsig-" + str(uuid.uuid4())
        E = lambda ns, name, parent=None, text=None, **attrs: _el(ns, name, parent, text, attrs)  # noqa: E731
        sig = etree.Element(f"{{{DS}}}Signature", nsmap={"ds": DS}, Id=sid)
        si = E(DS, "SignedInfo", sig)
        E(DS, "CanonicalizationMethod", si, Algorithm=C14N)
        E(DS, "SignatureMethod", si, Algorithm=SIGNATURE)
        ref = E(DS, "Reference", si, Id=sid + "-ref0", URI="#" + SIGNED_ID)
        tr = E(DS, "Transforms", ref)
        E(DS, "Transform", tr, Algorithm=ENVELOPED)
        E(DS, "Transform", tr, Algorithm=C14N)
        E(DS, "DigestMethod", ref, Algorithm=DIGEST)
        E(DS, "DigestValue", ref, _b64(body_digest))
        props_ref = E(DS, "Reference", si, Type="http://uri.etsi.org/01903#SignedProperties", URI=f"#{sid}-signedprops")
        E(DS, "Transforms", props_ref).append(_el(DS, "Transform", None, None, {"Algorithm": C14N}))
        E(DS, "DigestMethod", props_ref, Algorithm=DIGEST)
        props_digest = E(DS, "DigestValue", props_ref)
        value = E(DS, "SignatureValue", sig, Id=sid + "-sigvalue")
        E(DS, "X509Certificate", E(DS, "X509Data", E(DS, "KeyInfo", sig)), _b64(self.certificate_der))
        qp = etree.SubElement(E(DS, "Object", sig), f"{{{XADES}}}QualifyingProperties", nsmap={"xades": XADES},
                              Target="#" + sid)
        sp = E(XADES, "SignedProperties", qp, Id=f"{sid}-signedprops")
        ssp = E(XADES, "SignedSignatureProperties", sp)
        E(XADES, "SigningTime", ssp, datetime.now(UTC).isoformat(timespec="seconds"))
        cert = E(XADES, "Cert", E(XADES, "SigningCertificate", ssp))
        cd = E(XADES, "CertDigest", cert)
        E(DS, "DigestMethod", cd, Algorithm=DIGEST)
        E(DS, "DigestValue", cd, _b64(streebog256(self.certificate_der)))
        iss = E(XADES, "IssuerSerial", cert)
        E(DS, "X509IssuerName", iss, self.issuer)
        E(DS, "X509SerialNumber", iss, str(self.serial))

        target.insert(0, sig)  # ds:Signature is BaseType's first child
        props_digest.text = _b64(streebog256(_c14n(sp)))
        value.text = _b64(self._sign_value(_c14n(si)))
        return envelope


def _el(ns: str, name: str, parent: etree._Element | None, text: str | None, attrs: dict[str, str]) -> etree._Element:
    el = etree.Element(f"{{{ns}}}{name}") if parent is None else etree.SubElement(parent, f"{{{ns}}}{name}")
    for k, v in attrs.items():
        el.set(k, v)
    if text is not None:
        el.text = text
    return el
