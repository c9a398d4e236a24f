"""A sample paper answer letter (notifier/letters.py) for the docs: the PDF, and page 1 as PNG by
poppler's ``pdftoppm`` when it is installed (``apt-get install poppler-utils``).

    python -m devtools.sample_letter [docs/img/answer_letter]   # writes <stem>.png (<stem>.pdf without pdftoppm)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from notifier.letters import Organisation, render_letter

SAMPLE = {
    "_id": "sample", "number": "ZH-2026-0000042", "registered_at": datetime(2026, 1, 12, 9, 5, tzinfo=UTC),
    "answered_at": datetime(2026, 1, 20, 11, 0, tzinfo=UTC), "tz": "Asia/Yekaterinburg", "party_id": "uk-zarechye",
    "party_name": 'ООО "УК Заречье"',
    "addressee": {"name": "Петрова Анна Сергеевна",
                  "postal_address": "623100, Свердловская обл., г. Первоуральск, ул. Ленина, д. 10, кв. 5"},
    "text": "Сообщаем, что 19.01.2026 проведено обследование системы отопления дома № 10 по ул. Ленина. Выявлен "
            "завоздушенный стояк; воздух спущен, температура воздуха в квартире № 5 восстановлена до нормативной "
            "(+22 °C).\nПовторный замер проведён 20.01.2026 в присутствии представителя совета дома. Перерасчёт платы "
            "за отопление за период с 12.01.2026 по 19.01.2026 будет отражён в квитанции за январь.",
}
ORG = Organisation("МКУ «Единый контакт-центр ЖКХ»", "620014, г. Екатеринбург, пр. Ленина, д. 24а",
                   "+7 (343) 000-00-00")


def main(stem: str = "docs/img/answer_letter") -> int:
    out = Path(stem)
    pdf = render_letter(SAMPLE, ORG)
    if shutil.which("pdftoppm") is None:
        out.with_suffix(".pdf").write_bytes(pdf)
        print(f"wrote {out.with_suffix('.pdf')}; pdftoppm not found, no PNG", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "letter.pdf"
        src.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", str(src), str(out)],
                       check=True)
    print(f"wrote {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
