"""The emulator checks XAdES-BES GOST signatures when it is configured to (a trusted certificate).

Requests are signed by gis_sync's own signer (services/gis_sync/signing.py, itself verified with
OpenSSL's GOST engine in test_gis_signing.py); the emulator's verifier is a separate implementation.
Keys and certificates are made in Python (devtools/gis_emulator/gost.py), so nothing here skips,
except the one case that also checks a certificate made by OpenSSL's GOST engine.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from devtools.gis_emulator import SIGNATURE_FAULT, SOAP_PATH, EmulatorServer, EmulatorState, SignatureVerifier
from devtools.gis_emulator.gost import GostCertificate, make_test_pki
from devtools.gis_emulator.server import UNSIGNED_WARNING, validation_errors
from gis_sync.mapping import action_payload, zeep_action
from gis_sync.signing import DS, XADES, GostXadesSigner
from gis_sync.soap import GisClient, GisFault

ROOT = Path(__file__).resolve().parents[2]
PARTY_MAP = ROOT / "devtools" / "sample_gis" / "gis_parties.csv"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
BASE = "http://dom.gosuslugi.ru/schema/integration/base/"
APPEALS = "http://dom.gosuslugi.ru/schema/integration/appeals/"
ORG = "0f6f1d2a-5c1e-4b8e-9f00-000000000059"
UK = "c32e262b-dfb9-5b4c-9d8e-8df0e87b94f2"
TSJ = "f16a4105-94df-56c1-a4c5-34beb8d0484b"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    return (make_test_pki(d, "Управляющая организация (тест)", name="org"),
            make_test_pki(d, "Чужая организация", name="other"))


def _state(**kw: Any) -> EmulatorState:
    return EmulatorState.from_party_map(PARTY_MAP, processing_delay_s=0.0, polls_to_complete=1, **kw)


def _performer_item(appeal_guid: str, answerer: str = UK) -> tuple[str, dict[str, Any]]:
    item = {"_id": str(uuid.uuid4()), "appeal_guid": appeal_guid, "kind": "Performer",
            "payload": action_payload("Performer", answerer)}
    return item["_id"], zeep_action(item)[1]


async def _done(client: GisClient, message_guid: str):
    for _ in range(50):
        st = await client.get_state(message_guid)  # getStateRequest goes unsigned: it has no place for a signature
        if st.done:
            return st
        await asyncio.sleep(0.01)
    raise AssertionError("not processed")


def _signed_import(signer: Any, appeal_guid: str, answerer: str = UK) -> tuple[str, etree._Element]:
    """A signed importAnswer envelope as gis_sync puts it on the wire."""
    client = GisClient("http://gis.invalid/AppealsAsync", ORG, signer=signer)
    tg, action = _performer_item(appeal_guid, answerer)
    msg = client._client.create_message(client._service, "importAnswer", _soapheaders=client._header(),
                                        version=client.import_version, AppealAction=[action])
    return tg, etree.fromstring(etree.tostring(signer.sign(msg)))


async def _post(url: str, env: etree._Element | bytes) -> tuple[int, str | None, str]:
    data = env if isinstance(env, bytes) else etree.tostring(env, xml_declaration=True, encoding="UTF-8")
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.post(url + SOAP_PATH, content=data, headers={"SOAPAction": "urn:importAnswer",
                                                                     "Content-Type": "text/xml; charset=utf-8"})
    if r.status_code != 500:
        return r.status_code, None, ""
    fault = etree.fromstring(r.content).find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault/detail/{{{BASE}}}Fault")
    assert validation_errors(fault) == []  # the published base:Fault: ErrorCode, ErrorMessage
    return r.status_code, fault.findtext(f"{{{BASE}}}ErrorCode"), fault.findtext(f"{{{BASE}}}ErrorMessage") or ""


async def test_signed_by_gis_sync_is_accepted_and_unsigned_is_refused(pki):
    org, _ = pki
    state = _state()
    (appeal,) = state.create_appeals(generate=1)
    async with EmulatorServer(state, verifier=SignatureVerifier(org.certificate)) as url:
        signed = GisClient(url + SOAP_PATH, ORG, signer=GostXadesSigner.from_files(org.key_path, org.cert_path))
        unsigned = GisClient(url + SOAP_PATH, ORG)
        try:
            tg, action = _performer_item(appeal.guid)
            st = await _done(signed, await signed.submit_import(appeal_actions=[action]))
            assert [(r.transport_guid, r.ok) for r in st.import_results] == [(tg, True)]
            assert state.applied_count(tg) == 1 and state.appeal(appeal.guid).answerer_guid == UK
            export = await _done(signed, await signed.submit_export(appeal_guids=[appeal.guid]))
            assert [a["AppealGUID"] for a in export.appeals] == [appeal.guid]

            messages = len(state.messages())
            tg2, action2 = _performer_item(appeal.guid, TSJ)
            with pytest.raises(GisFault) as refused:
                await unsigned.submit_import(appeal_actions=[action2])
            assert refused.value.code == SIGNATURE_FAULT
            with pytest.raises(GisFault) as refused_export:
                await unsigned.submit_export(appeal_guids=[appeal.guid])
            assert refused_export.value.code == SIGNATURE_FAULT
            assert len(state.messages()) == messages and state.applied_count(tg2) == 0  # nothing accepted
            assert state.appeal(appeal.guid).answerer_guid == UK
        finally:
            await signed.close()
            await unsigned.close()


async def test_tampered_requests_are_refused(pki):
    org, _ = pki
    signer = GostXadesSigner.from_files(org.key_path, org.cert_path)
    state = _state()
    (appeal,) = state.create_appeals(generate=1)
    async with EmulatorServer(state, verifier=SignatureVerifier(org.certificate)) as url:
        tg, env = _signed_import(signer, appeal.guid)
        body_answerer = env.find(f".//{{{APPEALS}}}Performer/{{{APPEALS}}}AnswererGUID")
        body_answerer.text = TSJ  # another known performer: schema-valid, but not what was signed
        assert await _post(url, env) == (500, SIGNATURE_FAULT, "Ссылка 1 (URI #signed-data-container): хэш не "
                                                               "совпадает: подписанные данные изменены")

        _, env = _signed_import(signer, appeal.guid)
        env.find(f".//{{{XADES}}}SigningTime").text = "2001-01-01T00:00:00+00:00"
        status, code, message = await _post(url, env)
        assert (status, code) == (500, SIGNATURE_FAULT) and "Ссылка 2" in message

        _, env = _signed_import(signer, appeal.guid)
        value = env.find(f".//{{{DS}}}SignatureValue")
        raw = bytearray(base64.b64decode(value.text))
        raw[5] ^= 0x01
        value.text = base64.b64encode(bytes(raw)).decode()
        status, code, message = await _post(url, env)
        assert (status, code) == (500, SIGNATURE_FAULT) and "SignatureValue" in message

        _, env = _signed_import(signer, appeal.guid)  # the signature moved off the request element
        request = env.find(f"{{{SOAP}}}Body")[0]
        request.set("Id", "something-else")
        status, code, message = await _post(url, env)
        assert (status, code) == (500, SIGNATURE_FAULT) and "не найден" in message

        tg_ok, env = _signed_import(signer, appeal.guid)  # the untouched one goes through
        assert (await _post(url, env))[0] == 200
    assert state.applied_count(tg) == 0 and len(state.messages()) == 1


async def test_signed_with_another_key_is_refused(pki):
    org, other = pki
    state = _state()
    (appeal,) = state.create_appeals(generate=1)
    async with EmulatorServer(state, verifier=SignatureVerifier(org.certificate)) as url:
        # another organisation's key and certificate: a valid signature, but not by the trusted certificate
        _, env = _signed_import(GostXadesSigner.from_files(other.key_path, other.cert_path), appeal.guid)
        status, code, message = await _post(url, env)
        assert (status, code, message) == (500, SIGNATURE_FAULT,
                                           "Сертификат подписи не является доверенным сертификатом организации")
        # another key that claims the trusted certificate: only the signature value can tell
        impostor = GostXadesSigner(other.private_key, other.curve, org.certificate.der)
        _, env = _signed_import(impostor, appeal.guid)
        status, code, message = await _post(url, env)
        assert (status, code) == (500, SIGNATURE_FAULT)
        assert message == "Значение подписи (SignatureValue) не прошло проверку ключом сертификата"
    assert state.messages() == []


async def test_an_expired_certificate_is_refused(tmp_path):
    old = make_test_pki(tmp_path, "Просроченный", days=1, now=datetime.now(UTC) - timedelta(days=10))
    state = _state()
    (appeal,) = state.create_appeals(generate=1)
    async with EmulatorServer(state, verifier=SignatureVerifier(old.certificate)) as url:
        _, env = _signed_import(GostXadesSigner.from_files(old.key_path, old.cert_path), appeal.guid)
        status, code, message = await _post(url, env)
    assert (status, code) == (500, SIGNATURE_FAULT) and "Срок действия" in message


def _need_gost_engine() -> None:
    if shutil.which("openssl") is None or subprocess.run(["openssl", "engine", "gost"], capture_output=True,
                                                          check=False).returncode != 0:
        pytest.skip("OpenSSL has no GOST engine: install Debian's libengine-gost-openssl (scripts/test does as root)")


async def test_a_certificate_made_by_openssl_gost_engine_is_trusted(tmp_path):
    _need_gost_engine()
    r = subprocess.run(["openssl", "req", "-engine", "gost", "-x509", "-newkey", "gost2012_256", "-pkeyopt",
                        "paramset:A", "-nodes", "-keyout", str(tmp_path / "key.pem"),
                        "-out", str(tmp_path / "cert.pem"), "-subj", "/CN=openssl gost/O=Test", "-days", "30",
                        "-md_gost12_256"], capture_output=True, check=False)
    assert r.returncode == 0, r.stderr
    cert = GostCertificate.from_file(tmp_path / "cert.pem")
    state = _state()
    (appeal,) = state.create_appeals(generate=1)
    async with EmulatorServer(state, verifier=SignatureVerifier(cert)) as url:
        tg, env = _signed_import(GostXadesSigner.from_files(tmp_path / "key.pem", tmp_path / "cert.pem"), appeal.guid)
        assert (await _post(url, env))[0] == 200


def test_the_python_made_certificate_is_what_openssl_reads(pki):
    """The test PKI is a real GOST certificate: OpenSSL's GOST engine verifies its self-signature."""
    org, _ = pki
    _need_gost_engine()
    r = subprocess.run(["openssl", "verify", "-engine", "gost", "-CAfile", str(org.cert_path), str(org.cert_path)],
                       capture_output=True, text=True, check=False)
    assert r.stdout.strip().endswith(": OK"), r.stdout + r.stderr


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "devtools.gis_emulator", "--host", "127.0.0.1", "--port", "0",
         "--party-map", str(PARTY_MAP), "--org-ppa-guid", ORG, "--log-level", "WARNING", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    return err


async def test_command_line_requires_signatures_or_says_it_does_not(pki):
    org, _ = pki
    proc = _cli("--require-signature", "--trusted-cert", str(org.cert_path))
    try:
        url = proc.stdout.readline().strip().rsplit(" ", 1)[1]
        (appeal,) = httpx.post(url + "/emulator/appeals", json={"generate": 1}).json()
        unsigned = _signed_import(GostXadesSigner.from_files(org.key_path, org.cert_path), appeal["appeal_guid"])[1]
        unsigned.find(f"{{{SOAP}}}Body")[0].remove(unsigned.find(f".//{{{DS}}}Signature"))
        status, code, message = await _post(url, unsigned)
        assert (status, code) == (500, SIGNATURE_FAULT) and message.startswith("Запрос не подписан")
        _, signed = _signed_import(GostXadesSigner.from_files(org.key_path, org.cert_path), appeal["appeal_guid"])
        assert (await _post(url, signed))[0] == 200
    finally:
        err = _stop(proc)
    assert proc.returncode == 0 and UNSIGNED_WARNING not in err

    proc = _cli()
    try:
        assert proc.stdout.readline().startswith("gis-emulator listening on http://127.0.0.1:")
    finally:
        err = _stop(proc)
    assert UNSIGNED_WARNING in err  # the unsigned mode says so at start

    bad = subprocess.run([sys.executable, "-m", "devtools.gis_emulator", "--require-signature"], cwd=ROOT,
                         capture_output=True, text=True, check=False, timeout=30)
    assert bad.returncode == 2 and "--trusted-cert" in bad.stderr
