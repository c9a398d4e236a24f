"""Run the ГИС ЖКХ AppealsAsync emulator.

    python -m devtools.gis_emulator --host 127.0.0.1 --port 18080 \\
        --party-map devtools/sample_gis/gis_parties.csv --seed 3 --org-ppa-guid <guid>

Prints ``gis-emulator listening on http://HOST:PORT`` on stdout once it accepts connections
(logs go to stderr). SIGINT/SIGTERM stop it cleanly (exit status 0).

``--require-signature --trusted-cert CERT`` (or ``ZHKH_GIS_EMULATOR_REQUIRE_SIGNATURE=1`` and
``ZHKH_GIS_EMULATOR_TRUSTED_CERT``): every exportAppeal/importAnswer must carry a XAdES-BES GOST
signature made with that certificate. Without them the emulator runs unsigned and says so at start.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from .server import EmulatorServer
from .signature import SignatureVerifier
from .state import DEFAULT_ORG_PPA_GUID, EmulatorState

DEFAULT_PARTY_MAP = Path(__file__).resolve().parents[1] / "sample_gis" / "gis_parties.csv"
_early_signals: list[int] = []  # signals received before uvicorn took over signal handling


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m devtools.gis_emulator", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=18080, help="0: any free port (the printed line tells which)")
    p.add_argument("--party-map", type=Path, default=DEFAULT_PARTY_MAP,
                   help="CSV party_id,answerer_guid,org_guid,comment: known performers and receiver organisations")
    p.add_argument("--seed", type=int, default=0, help="generate this many appeals at start")
    p.add_argument("--org-ppa-guid", default=DEFAULT_ORG_PPA_GUID, help="the only orgPPAGUID accepted")
    p.add_argument("--processing-delay", type=float, default=0.05, help="seconds before a message can complete")
    p.add_argument("--polls-to-complete", type=int, default=2, help="getState polls before a message completes")
    p.add_argument("--random-seed", type=int, default=None, help="makes generated appeals reproducible")
    p.add_argument("--require-signature", action="store_true",
                   default=os.environ.get("ZHKH_GIS_EMULATOR_REQUIRE_SIGNATURE", "").lower() in ("1", "true", "yes"),
                   help="refuse exportAppeal/importAnswer without a valid XAdES-BES GOST signature "
                        "(needs --trusted-cert)")
    p.add_argument("--trusted-cert", type=Path, default=os.environ.get("ZHKH_GIS_EMULATOR_TRUSTED_CERT") or None,
                   help="the organisation's certificate (PEM/DER, GOST R 34.10-2012 256) that signatures "
                        "must be made with")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if args.trusted_cert is not None:
        args.trusted_cert = Path(args.trusted_cert)
    if args.require_signature and args.trusted_cert is None:
        p.error("--require-signature needs --trusted-cert (or ZHKH_GIS_EMULATOR_TRUSTED_CERT)")
    if args.trusted_cert is not None and not args.require_signature:
        p.error("--trusted-cert is only used with --require-signature")
    return args


async def run(args: argparse.Namespace) -> None:
    state = EmulatorState.from_party_map(
        args.party_map, org_ppa_guid=args.org_ppa_guid, processing_delay_s=args.processing_delay,
        polls_to_complete=args.polls_to_complete, seed=args.seed, random_seed=args.random_seed,
    )
    verifier = SignatureVerifier.from_file(args.trusted_cert) if args.require_signature else None
    server = EmulatorServer(state, host=args.host, port=args.port, log_level=args.log_level.lower(), verifier=verifier)
    url = await server.start()
    print(f"gis-emulator listening on {url}", flush=True)
    if _early_signals:
        await server.stop()
    await server.wait()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # uvicorn handles SIGINT/SIGTERM while serving, then re-raises the signal to the handler that was
    # installed before it: make that one harmless so a signal means a clean exit, not a traceback or -15.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: _early_signals.append(signum))
    try:
        asyncio.run(run(args))
    except (OSError, ValueError) as exc:
        print(f"gis-emulator: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
