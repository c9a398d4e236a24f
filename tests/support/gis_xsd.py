"""The published ГИС ЖКХ schema bundles the gis tests judge by (not the project's own subset).

``ZHKH_GIS_XSD_BUNDLES`` (default ``../shared/gis-xsd`` beside the repository) is a folder with one
sub-folder per bundle (``14.4.0.1``, ``16.3.0.0``), each with ``all.xsd`` loading hcs-base and
hcs-appeals-types together. Without it the tests that need it skip and say where the bundle comes from.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import xmlschema
from lxml import etree
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = ("14.4.0.1", "16.3.0.0")
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
BASE = "http://dom.gosuslugi.ru/schema/integration/base/"

WHERE = (
    "the published ГИС ЖКХ integration schemas are not here: put the official bundles (hcs-base.xsd, "
    "hcs-appeals-types.xsd and what they import, plus an all.xsd importing base and appeals; "
    "dom.gosuslugi.ru publishes them under 'Регламенты и форматы') in one folder per version "
    "(14.4.0.1, 16.3.0.0) and point ZHKH_GIS_XSD_BUNDLES at it"
)


class GisXsdSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ZHKH_")
    gis_xsd_bundles: Path = ROOT.parent / "shared" / "gis-xsd"


def bundle_dir(version: str) -> Path:
    return GisXsdSettings().gis_xsd_bundles / version / "all.xsd"


@cache
def published(version: str) -> xmlschema.XMLSchema:
    path = bundle_dir(version)
    if not path.is_file():
        pytest.skip(f"{path} missing: {WHERE}")
    return xmlschema.XMLSchema(str(path))


def errors(version: str, element: etree._Element) -> list[str]:
    """Errors of one element (a global element of base or appeals) against a published bundle."""
    schema = published(version)
    return [f"{e.reason} at {e.path}" for e in schema.iter_errors(etree.fromstring(etree.tostring(element)))]


def envelope_parts(data: bytes) -> list[etree._Element]:
    """What a SOAP envelope carries that the schemas define: the headers, the body element, a fault's detail."""
    env = etree.fromstring(data)
    parts = [h for h in env.findall(f"{{{SOAP}}}Header/*")]
    body = env.find(f"{{{SOAP}}}Body")
    for child in body:
        if child.tag == f"{{{SOAP}}}Fault":
            parts.extend(child.findall(f"detail/{{{BASE}}}Fault"))
            assert child.findall(f"detail/{{{BASE}}}Fault"), "a fault without base:Fault detail"
        else:
            parts.append(child)
    return parts
