"""GOST XAdES-BES signing of gis_sync's requests, verified independently with OpenSSL's GOST engine
(Debian's libengine-gost-openssl; scripts/test installs it). The test makes its own key and
self-issued certificate with OpenSSL; the signature made by gostcrypto must verify there."""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from lxml import etree

from gis_sync.mapping import action_payload, zeep_action
from gis_sync.signing import DS, SIGNED_ID, XADES, GostXadesSigner
from gis_sync.soap import GisClient, load_signer
from tests.support.gis_xsd import BUNDLES, errors, published

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
UK = "c32e262b-dfb9-5b4c-9d8e-8df0e87b94f2"


def _openssl(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, check=False, **kw)


@pytest.fixture(scope="module")
def gost_pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("no openssl: install Debian's openssl and libengine-gost-openssl (scripts/test does as root)")
    d = tmp_path_factory.mktemp("gost")
    r = _openssl("req", "-engine", "gost", "-x509", "-newkey", "gost2012_256", "-pkeyopt", "paramset:A", "-nodes",
                 "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-subj", "/CN=zhkh-appeals test/O=Test, Ltd",
                 "-days", "30", "-md_gost12_256")
    if r.returncode != 0:
        pytest.skip("OpenSSL has no GOST engine: install Debian's libengine-gost-openssl (scripts/test does as root)")
    _openssl("x509", "-engine", "gost", "-in", str(d / "cert.pem"), "-pubkey", "-noout", "-out", str(d / "pub.pem"))
    return d


def _gost_digest(data: bytes, d: Path) -> bytes:
    (d / "in.bin").write_bytes(data)
    r = _openssl("dgst", "-engine", "gost", "-md_gost12_256", "-binary", str(d / "in.bin"))
    assert r.returncode == 0, r.stderr
    return r.stdout


def _c14n(el: etree._Element) -> bytes:
    return etree.tostring(el, method="c14n", exclusive=True)


def _signed_envelope(signer) -> etree._Element:
    client = GisClient("http://gis.invalid/AppealsAsync", "0f6f1d2a-5c1e-4b8e-9f00-000000000059", signer=signer)
    item = {"_id": str(uuid.uuid4()), "appeal_guid": str(uuid.uuid4()), "kind": "Performer",
            "payload": action_payload("Performer", UK)}
    _, action = zeep_action(item)
    msg = client._client.create_message(client._service, "importAnswer", _soapheaders=client._header(),
                                        version=client.import_version, AppealAction=[action])
    # what goes on the wire: zeep's plugin runs the signer, then serialises
    return etree.fromstring(etree.tostring(signer.sign(msg)))


def test_a_signed_request_verifies_with_openssl_gost_engine_and_stays_schema_valid(gost_pki):
    d = gost_pki
    signer = load_signer("gost", d / "key.pem", d / "cert.pem")
    assert isinstance(signer, GostXadesSigner)
    env = _signed_envelope(signer)
    request = env.find(f"{{{SOAP}}}Body")[0]
    assert request.get("Id") == SIGNED_ID
    sig = request[0]
    assert sig.tag == f"{{{DS}}}Signature"
    si = sig.find(f"{{{DS}}}SignedInfo")
    refs = si.findall(f"{{{DS}}}Reference")
    # 1. the body reference: enveloped-signature + exc-c14n, GOST R 34.11-2012 digest (computed by OpenSSL)
    unsigned = etree.fromstring(etree.tostring(request))
    unsigned.remove(unsigned.find(f"{{{DS}}}Signature"))
    assert refs[0].get("URI") == "#" + SIGNED_ID
    assert base64.b64decode(refs[0].findtext(f"{{{DS}}}DigestValue")) == _gost_digest(_c14n(unsigned), d)
    # 2. the XAdES SignedProperties reference
    props = sig.find(f".//{{{XADES}}}SignedProperties")
    assert refs[1].get("URI") == "#" + props.get("Id")
    assert base64.b64decode(refs[1].findtext(f"{{{DS}}}DigestValue")) == _gost_digest(_c14n(props), d)
    # 3. the signing certificate: digest, issuer, serial, and the certificate itself in KeyInfo
    cert_der = base64.b64decode(sig.findtext(f".//{{{DS}}}X509Certificate"))
    r = _openssl("x509", "-in", str(d / "cert.pem"), "-outform", "DER")
    assert cert_der == r.stdout
    assert base64.b64decode(props.findtext(f".//{{{XADES}}}CertDigest/{{{DS}}}DigestValue")) == _gost_digest(cert_der, d)
    serial = _openssl("x509", "-in", str(d / "cert.pem"), "-noout", "-serial").stdout.decode().split("=")[1].strip()
    assert int(props.findtext(f".//{{{DS}}}X509SerialNumber")) == int(serial, 16)
    assert props.findtext(f".//{{{DS}}}X509IssuerName") == "O=Test\\, Ltd,CN=zhkh-appeals test"
    # 4. the signature value over c14n(SignedInfo), verified by OpenSSL with the certificate's public key
    (d / "si.xml").write_bytes(_c14n(si))
    (d / "sig.bin").write_bytes(base64.b64decode(sig.findtext(f"{{{DS}}}SignatureValue")))
    r = _openssl("dgst", "-engine", "gost", "-md_gost12_256", "-verify", str(d / "pub.pem"), "-signature",
                 str(d / "sig.bin"), str(d / "si.xml"))
    assert b"Verified OK" in r.stdout, r.stdout + r.stderr
    # and a tampered SignedInfo does not verify
    (d / "si.xml").write_bytes(_c14n(si).replace(b"gostr34112012-256", b"gostr34112012-512", 1))
    r = _openssl("dgst", "-engine", "gost", "-md_gost12_256", "-verify", str(d / "pub.pem"), "-signature",
                 str(d / "sig.bin"), str(d / "si.xml"))
    assert b"Verified OK" not in r.stdout
    # 5. the signed request is still valid against both published bundles (ds:Signature's real schema)
    for version in BUNDLES:
        published(version)
        assert errors(version, request) == [], version
        assert errors(version, env.find(f"{{{SOAP}}}Header")[0]) == []


def test_get_state_goes_unsigned_and_gost_needs_key_and_certificate(gost_pki):
    d = gost_pki
    signer = GostXadesSigner.from_files(d / "key.pem", d / "cert.pem")
    env = etree.fromstring(
        f'<s:Envelope xmlns:s="{SOAP}"><s:Body><b:getStateRequest xmlns:b="http://dom.gosuslugi.ru/schema/'
        f'integration/base/"><b:MessageGUID>{uuid.uuid4()}</b:MessageGUID></b:getStateRequest></s:Body></s:Envelope>')
    assert signer.sign(env).find(f".//{{{DS}}}Signature") is None  # getStateRequest has no place for one
    with pytest.raises(ValueError, match="ZHKH_GIS_SIGNING_KEY"):
        load_signer("gost")
