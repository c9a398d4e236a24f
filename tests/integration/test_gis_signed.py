"""gis_sync signing for real: ``ZHKH_GIS_SIGNER=gost`` against the emulator that requires signatures.

gis_sync runs as its own process with the key and certificate from files (as it would in production);
the emulator trusts only that certificate. The same kind of step from an unsigned gis_sync is refused
by the emulator (fault EMU-SIG) and becomes GisActionFailed; the signed one is mirrored.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from devtools.gis_emulator import SIGNATURE_FAULT, EmulatorServer, EmulatorState, SignatureVerifier
from devtools.gis_emulator.gost import make_test_pki
from tests.integration.test_gis_sync import PARTY_MAP, SOAP_PATH, UK_ANSWERER, Lifecycle, gis_settings, of_type
from tests.support.kafka import TopicReader, running
from tests.support.services import start_process
from zhkh_contracts import GisActionFailed, GisActionMirrored, Topics
from zhkh_runtime.kafka import ensure_topics

pytestmark = pytest.mark.integration


async def test_gost_signed_gis_sync_is_mirrored_by_an_emulator_that_checks_signatures(infra, prefix, tmp_path: Path):
    from gis_sync.main import create_app

    topics = Topics(prefix)
    await ensure_topics(infra.bootstrap, topics.catalog())
    pki = make_test_pki(tmp_path, "Управляющая организация (тест)")
    state = EmulatorState.from_party_map(PARTY_MAP, processing_delay_s=0.05, polls_to_complete=2)
    signed_appeal, unsigned_appeal = state.create_appeals(generate=2)
    async with EmulatorServer(state, verifier=SignatureVerifier(pki.certificate)) as url:
        # first gis_sync without a signature (in-process): the step is refused, nothing is applied
        other = Lifecycle(infra, prefix, unsigned_appeal.guid)
        settings = gis_settings(infra, prefix, url, gis_signer="none")
        async with TopicReader(infra.bootstrap, topics.lifecycle) as r, running(create_app(settings)):
            await other.publish(other.registered(), other.assigned())
            await r.wait_for(lambda _: len(of_type(r, GisActionFailed)) >= 1, timeout=60)
            failed = [e.data for e in of_type(r, GisActionFailed)]
        assert [(str(f.gis_appeal_guid), f.code) for f in failed] == [
            (unsigned_appeal.guid, f"gis_fault:{SIGNATURE_FAULT}")]
        assert state.messages() == [] and state.appeal(unsigned_appeal.guid).answerer_guid is None

        # then gis_sync as its own process with ZHKH_GIS_SIGNER=gost: mirrored
        lc = Lifecycle(infra, prefix, signed_appeal.guid)
        await lc.publish(lc.registered(), lc.assigned())
        proc = start_process("gis_sync", infra, prefix, tmp_path / "gis_sync.log",
                             ZHKH_GIS_ENDPOINT=url + SOAP_PATH, ZHKH_GIS_PARTY_MAP=str(PARTY_MAP),
                             ZHKH_GIS_SIGNER="gost", ZHKH_GIS_SIGNING_KEY=str(pki.key_path),
                             ZHKH_GIS_SIGNING_CERT=str(pki.cert_path), ZHKH_PUSH_INTERVAL_S="0.05",
                             ZHKH_PULL_INTERVAL_S="3600", ZHKH_RECONCILE_INTERVAL_S="3600")
        async with TopicReader(infra.bootstrap, topics.lifecycle) as r:
            try:
                await r.wait_for(lambda _: len(of_type(r, GisActionMirrored)) >= 1, timeout=60)
                await r.settle(1.0)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
            mirrored = of_type(r, GisActionMirrored)
    applied = state.applied()
    assert [(x["appeal_guid"], x["kind"]) for x in applied] == [(signed_appeal.guid, "Performer")]
    assert [str(e.data.transport_guid) for e in mirrored] == [applied[0]["transport_guid"]]
    assert state.appeal(signed_appeal.guid).answerer_guid == UK_ANSWERER
    assert state.appeal(unsigned_appeal.guid).answerer_guid is None  # the refused step was not retried
