"""GOST R 34.10-2012 (256) / 34.11-2012 pieces the emulator needs, on ``gostcrypto`` and ``asn1crypto``.

* reading a certificate: its DER, serial, validity and public key (asn1crypto's x509 cannot parse a
  GOST public key, so the few structures needed are declared here);
* verifying a signature value s||r over a GOST R 34.11-2012 (256) digest with that public key;
* ``make_test_pki``: a key and a self-issued certificate for tests and local runs, written the way
  OpenSSL's GOST engine writes them (PKCS#8 with the key little-endian, X.509 with the public key
  x||y little-endian in an OCTET STRING, RFC 4491), so gis_sync's ``ZHKH_GIS_SIGNER=gost`` reads them.

This is a development tool: the certificate it makes is self-issued and fictional, not a qualified one.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import gostcrypto
from asn1crypto import core, pem

GOST_2012_256 = "1.2.643.7.1.1.1.1"  # GOST R 34.10-2012 256 public key
SIG_2012_256 = "1.2.643.7.1.1.3.2"  # signature with GOST R 34.11-2012 256
STREEBOG_256 = "1.2.643.7.1.1.2.2"
# the parameter set OIDs a GOST R 34.10-2012 256 key may name -> gostcrypto's curve names
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
CRYPTOPRO_A = "1.2.643.2.2.35.1"


class _Alg(core.Sequence):
    _fields = [("algorithm", core.ObjectIdentifier), ("parameters", core.Any, {"optional": True})]


class _Spki(core.Sequence):
    _fields = [("algorithm", _Alg), ("public_key", core.OctetBitString)]


class _Validity(core.Sequence):
    _fields = [("not_before", core.Any), ("not_after", core.Any)]


class _Tbs(core.Sequence):
    _fields = [
        ("version", core.Integer, {"explicit": 0, "optional": True}),
        ("serial", core.Integer),
        ("signature", _Alg),
        ("issuer", core.Any),
        ("validity", _Validity),
        ("subject", core.Any),
        ("spki", _Spki),
        ("issuer_unique_id", core.Any, {"implicit": 1, "optional": True}),
        ("subject_unique_id", core.Any, {"implicit": 2, "optional": True}),
        ("extensions", core.Any, {"explicit": 3, "optional": True}),
    ]


class _Certificate(core.Sequence):
    _fields = [("tbs", _Tbs), ("algorithm", _Alg), ("signature", core.OctetBitString)]


def streebog256(data: bytes) -> bytes:
    return bytes(gostcrypto.gosthash.new("streebog256", data=data).digest())


def der(data: bytes) -> bytes:
    """PEM or DER -> DER."""
    return pem.unarmor(data)[2] if pem.detect(data) else data


def _time(value: core.Any) -> datetime:
    raw = value.dump()
    parsed = (core.UTCTime if raw[:1] == b"\x17" else core.GeneralizedTime).load(raw).native
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class GostCertificate:
    der: bytes
    serial: int
    not_before: datetime
    not_after: datetime
    curve: str  # gostcrypto's name
    public_key: bytes  # x || y, big-endian, as gostcrypto wants it

    @classmethod
    def load(cls, data: bytes) -> GostCertificate:
        """A GOST R 34.10-2012 256 certificate (PEM or DER). ValueError for anything else."""
        raw = der(data)
        try:
            cert = _Certificate.load(raw)
            tbs = cert["tbs"]
            spki = tbs["spki"]
            oid = spki["algorithm"]["algorithm"].dotted
            params = spki["algorithm"]["parameters"]
            param_set = core.Sequence.load(params.dump())[0].dotted if params is not None else ""
            point = core.OctetString.load(spki["public_key"].native).native
            serial = tbs["serial"].native
            not_before, not_after = _time(tbs["validity"]["not_before"]), _time(tbs["validity"]["not_after"])
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise ValueError(f"not an X.509 certificate with a GOST key: {exc}") from None
        if oid != GOST_2012_256:
            raise ValueError(f"not a GOST R 34.10-2012 256 key (algorithm {oid})")
        if param_set not in CURVES:
            raise ValueError(f"unknown GOST parameter set {param_set!r}")
        if len(point) != 64:
            raise ValueError("unexpected GOST public key length")
        return cls(raw, serial, not_before, not_after, CURVES[param_set], point[:32][::-1] + point[32:][::-1])

    @classmethod
    def from_file(cls, path: str | Path) -> GostCertificate:
        return cls.load(Path(path).read_bytes())

    def verify(self, data: bytes, signature_s_r: bytes) -> bool:
        """Is ``signature_s_r`` (s||r, big-endian, as XMLDSig's GOST profile has it) a signature of ``data``?"""
        if len(signature_s_r) != 64:
            return False
        digest = bytearray(streebog256(data)[::-1])  # the hash read as a little-endian number
        curve = gostcrypto.gostsignature.CURVES_R_1323565_1_024_2019[self.curve]
        verifier = gostcrypto.gostsignature.new(gostcrypto.gostsignature.MODE_256, curve)
        try:
            return bool(verifier.verify(bytearray(self.public_key), digest,
                                        bytearray(signature_s_r[32:] + signature_s_r[:32])))
        except gostcrypto.gostsignature.GOSTSignatureError:
            return False


# ---------------------------------------------------------------------------------------------
# a test key and a self-issued certificate (no OpenSSL needed)


def _name(common_name: str) -> bytes:
    atv = core.Sequence()
    atv.contents = core.ObjectIdentifier("2.5.4.3").dump() + core.UTF8String(common_name).dump()
    rdn = core.SetOf(spec=core.Any)
    rdn.contents = atv.dump()
    name = core.Sequence()
    name.contents = rdn.dump()
    return name.dump()


def _seq(*parts: bytes) -> bytes:
    s = core.Sequence()
    s.contents = b"".join(parts)
    return s.dump()


def _utc(value: datetime) -> bytes:
    return core.UTCTime(value.replace(microsecond=0)).dump()


def _sign(private_key_be: bytes, curve: str, data: bytes) -> bytes:
    """s||r (big-endian) over streebog256(data)."""
    digest = bytearray(streebog256(data)[::-1])
    signer = gostcrypto.gostsignature.new(gostcrypto.gostsignature.MODE_256,
                                          gostcrypto.gostsignature.CURVES_R_1323565_1_024_2019[curve])
    rs = bytes(signer.sign(bytearray(private_key_be), digest))
    return rs[32:] + rs[:32]


@dataclass(frozen=True)
class TestPki:
    key_path: Path
    cert_path: Path
    private_key: bytes  # big-endian
    curve: str
    certificate: GostCertificate


def make_test_pki(directory: str | Path, common_name: str = "gis-emulator test", *, days: int = 365,
                  now: datetime | None = None, name: str = "gis") -> TestPki:
    """Writes ``<name>.key.pem`` (PKCS#8) and ``<name>.cert.pem`` (self-issued X.509) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    curve = CURVES[CRYPTOPRO_A]
    params = gostcrypto.gostsignature.CURVES_R_1323565_1_024_2019[curve]
    q = int(params["q"])
    while True:
        key = os.urandom(32)
        if 0 < int.from_bytes(key, "big") < q:
            break
    point = bytes(gostcrypto.gostsignature.new(gostcrypto.gostsignature.MODE_256, params)
                  .public_key_generate(bytearray(key)))
    point_le = point[:32][::-1] + point[32:][::-1]
    key_params = _seq(core.ObjectIdentifier(CRYPTOPRO_A).dump(), core.ObjectIdentifier(STREEBOG_256).dump())
    spki = _seq(_seq(core.ObjectIdentifier(GOST_2012_256).dump(), key_params),
                core.OctetBitString(core.OctetString(point_le).dump()).dump())
    sig_alg = _seq(core.ObjectIdentifier(SIG_2012_256).dump())
    start = (now or datetime.now(UTC)) - timedelta(minutes=5)
    serial = int.from_bytes(os.urandom(12), "big") | 1
    version = core.Integer(2).retag({"explicit": 0}).dump()
    tbs = _seq(version, core.Integer(serial).dump(), sig_alg, _name(common_name),
               _seq(_utc(start), _utc(start + timedelta(days=days))), _name(common_name), spki)
    cert_der = _seq(tbs, sig_alg, core.OctetBitString(_sign(key, curve, tbs)).dump())
    pkcs8 = _seq(core.Integer(0).dump(), _seq(core.ObjectIdentifier(GOST_2012_256).dump(), key_params),
                 core.OctetString(core.OctetString(key[::-1]).dump()).dump())  # little-endian, as OpenSSL writes it
    key_path, cert_path = directory / f"{name}.key.pem", directory / f"{name}.cert.pem"
    key_path.write_bytes(pem.armor("PRIVATE KEY", pkcs8))
    key_path.chmod(0o600)
    cert_path.write_bytes(pem.armor("CERTIFICATE", cert_der))
    return TestPki(key_path, cert_path, key, curve, GostCertificate.load(cert_der))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
