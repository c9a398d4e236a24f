"""Schema-valid XML instances generated from an XSD (``xmlschema`` components), with every optional
element present and each branch of each choice taken in turn (``variant`` selects the branch).

Not random: the same schema, element and variant give the same document (GUIDs from a counter).
"""

from __future__ import annotations

import uuid
from typing import Any

import xmlschema
from lxml import etree
from xmlschema.validators import XsdAnyElement, XsdElement, XsdGroup

CANDIDATES = (
    "2026-03-04", "2026-03-04T10:15:00+03:00", "true", "3", "1", "57701000", "12345678901", "A123.1", "12",
)


class Generator:
    def __init__(self, schema: xmlschema.XMLSchema, variant: int = 0, repeat: int = 2) -> None:
        self.schema, self.variant, self.repeat = schema, variant, repeat
        self.counter = 0
        self.choices = 0

    def element(self, name: str) -> etree._Element:
        xsd = self.schema.maps.elements[name]
        return self._element(xsd, None, 0)

    def _text(self, simple: Any, fixed: str | None) -> str:
        if fixed is not None:
            return fixed
        enum = getattr(simple, "enumeration", None)
        if enum:
            return str(enum[(self.variant + self.counter) % len(enum)])
        self.counter += 1
        guid = str(uuid.UUID(int=0x5EED0000_0000_4000_8000_000000000000 + self.counter))
        min_len = getattr(simple, "min_length", None) or 0
        text = f"Значение {self.counter} " + "текст " * max(0, (min_len // 6) + 1)
        max_len = getattr(simple, "max_length", None)
        if max_len is not None:
            text = text[:max_len]
        for value in (guid, *CANDIDATES, text.strip() or "x", text):
            try:
                if simple.is_valid(value):
                    return value
            except Exception:  # noqa: BLE001,S112 - some candidates do not even decode
                continue
        raise ValueError(f"no value for {simple}")

    def _element(self, xsd: XsdElement, parent: etree._Element | None, depth: int) -> etree._Element:
        el = etree.Element(xsd.name) if parent is None else etree.SubElement(parent, xsd.name)
        typ = xsd.type
        for attr in typ.attributes.values() if hasattr(typ, "attributes") else ():
            if attr.use == "required" or attr.fixed is not None:
                el.set(attr.name, attr.fixed if attr.fixed is not None else self._text(attr.type, None))
        if typ.is_simple():
            el.text = self._text(typ, xsd.fixed)
        elif typ.has_simple_content():
            el.text = self._text(typ.content, xsd.fixed)
        elif typ.content is not None:
            self._group(typ.content, el, depth + 1)
        return el

    def _group(self, group: XsdGroup, el: etree._Element, depth: int) -> None:
        items = [i for i in group if not isinstance(i, XsdAnyElement)]
        if group.model == "choice":
            self.choices += 1
            items = [items[(self.variant + self.choices) % len(items)]]
        for item in items:
            n = 1 if (item.max_occurs == 1 or depth > 8) else self.repeat
            if item.min_occurs == 0 and depth > 12:
                continue
            for _ in range(n):
                if isinstance(item, XsdGroup):
                    self._group(item, el, depth + 1)
                elif item.name and item.name.endswith("}Signature") and "xmldsig" in item.name:
                    continue  # a ds:Signature is made by the signer, not by this generator
                else:
                    self._element(item, el, depth)
