"""The generic recognisers find PHI that the header does not name, and leave clinical text alone."""

from __future__ import annotations

import pytest

from anonymizer.free_text import PLACEHOLDER, scrub
from anonymizer.identity import Identity


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("seen on 12/03/2021 in clinic", "12/03/2021"),
        ("seen on 3-12-21 in clinic", "3-12-21"),
        ("seen on 12.03.2021 in clinic", "12.03.2021"),
        ("scanned 2021-03-12T10:22:01Z here", "2021-03-12T10:22:01Z"),
        ("born 12 March 2021.", "12 March 2021"),
        ("born 5th of June 2020.", "5th of June 2020"),
        ("born May 5, 1970.", "May 5, 1970"),
        ("last seen 12-MAR-2021 here", "12-MAR-2021"),
        ("mother's number +44 20 7946 0958 today", "+44 20 7946 0958"),
        ("tel (212) 555-0199 today", "(212) 555-0199"),
        ("write to jo.bloggs@example.org please", "jo.bloggs@example.org"),
        ("from 10.1.2.3 over the VPN", "10.1.2.3"),
        ("from fe80::1ff:fe23:4567:890a over the VPN", "fe80::1ff:fe23:4567:890a"),
        ("lives at 14 Baker Street with", "14 Baker Street"),
        ("postcode SW1A 1AA on file", "SW1A 1AA"),
        ("brother MILLER^JOHN^Q attended", "MILLER^JOHN^Q"),
        ("Signed: Dr. Jane Smith", "Jane Smith"),
        ("SSN 123-45-6789 on file", "123-45-6789"),
        ("Accession: A123456 pending", "A123456"),
        ("ref 12345678 pending", "12345678"),
    ],
)
def test_phi_nobody_named_in_the_header_is_scrubbed(text: str, secret: str) -> None:
    cleaned, found = scrub(text, Identity())
    assert secret not in cleaned and found >= 1
    assert PLACEHOLDER in cleaned


@pytest.mark.parametrize(
    "text",
    [
        "CT CHEST W/O CONTRAST",
        "Axial 5mm",
        "slice 3 of 120, kVp 120, mAs 250",
        "Lesion 5 may represent scar",
        "series 2 may follow",
        "Follow-up in 3 months",
        "1.2.840.10008.5.1.4.1.1.2",
        "ratio 1:2, window 40/400",
    ],
)
def test_clinical_text_is_left_as_it_is(text: str) -> None:
    assert scrub(text, Identity()) == (text, 0)
