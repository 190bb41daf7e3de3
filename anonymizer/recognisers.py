"""Generic PHI in free text, whoever it belongs to: dates, phone numbers, IP and e-mail addresses,
street addresses and postcodes, record numbers, and names given with a title or in DICOM form.

The object's own identifying values are found apart (:mod:`anonymizer.identity`), and more surely;
these patterns catch what the header does not name (a relative, another date, a ward's phone). They
are plain regular expressions, matched case-insensitively, each on its own (overlapping finds are
merged by the caller); phone numbers are found by python-phonenumbers, which knows each region's
numbering plan. Nothing here loads a language model or touches the network, and importing it costs
milliseconds (presidio-analyzer, used before for the same patterns, took 1.3 s to import with spaCy).
"""

from __future__ import annotations

import ipaddress
import re

_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_MONTH = r"(?:0?[1-9]|1[0-2])"
_YEAR = r"(?:\d{4}|\d{2})"
# "may" is a month only with a year beside it ("lesion 5 may represent" is not a date)
_MONTH_NAME = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_SPACE = r"[\s\-/.,]*"
_TIME = r"(?:[T ][0-2]\d:[0-5]\d(?::[0-5]\d(?:\.\d+)?)?(?:Z|[+-][0-2]\d:?[0-5]\d)?)?"
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_TITLES = r"(?:Dr|Mr|Mrs|Ms|Miss|Prof|Doctor|Patient|Pt|Name|Dear|Signed|Surname)"
_STREETS = r"(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Boulevard|Blvd|Way|Court|Ct|Place|Pl|Close)"

# Each pattern alone; a find of one never hides a longer find of another.
_PATTERNS = [
    # dates: day, month and year in either order with one separator kind; ISO with an optional time;
    # a month by name with a day, a year, or both
    rf"\b{_DAY}([/.\-]){_MONTH}\1{_YEAR}\b",
    rf"\b{_MONTH}([/.\-]){_DAY}\1{_YEAR}\b",
    rf"\b\d{{4}}([/.\-]){_MONTH}\1{_DAY}{_TIME}\b",
    rf"\b{_DAY}(?:st|nd|rd|th)?{_SPACE}(?:of\s+)?{_MONTH_NAME}\.?(?:{_SPACE}\d{{2,4}})?\b",
    rf"\b{_DAY}(?:st|nd|rd|th)?{_SPACE}(?:of\s+)?may{_SPACE}\d{{2,4}}\b",
    rf"\b{_MONTH_NAME}\.?{_SPACE}{_DAY}(?:st|nd|rd|th)?(?:{_SPACE}\d{{4}})?\b",
    rf"\bmay{_SPACE}{_DAY}(?:st|nd|rd|th)?{_SPACE}\d{{4}}\b",
    rf"\b(?:{_MONTH_NAME}|may){_SPACE}\d{{4}}\b",
    # addresses: e-mail, IPv4 (with an optional prefix length), streets and UK postcodes
    r"\b[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+\b",
    rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?:/(?:3[0-2]|[12]?\d))?(?![\w]|\.\d)",  # not in a UID
    rf"\b\d{{1,5}}\s+(?:[A-Z][A-Za-z]+\s+){{1,3}}{_STREETS}\b\.?",
    r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b",
    # people: one or more titles ("Signed: Dr.") and one or two words; a DICOM-style FAMILY^GIVEN name
    rf"\b(?:{_TITLES}\.?:?\s+)+[A-Z][A-Za-z'\-]+(?:,?\s+[A-Z][A-Za-z'\-]+)?",
    r"\b[A-Za-z'\-]+\^[A-Za-z'\-]+(?:\^[A-Za-z'\-]*)*",
    # numbers that identify: labelled record numbers, US social security numbers, long digit runs
    r"\b(?:MRN|ID|No|Number|Acc|Accession|NHS|SSN|Hospital\s+No)\b\.?\s*[:#]?\s*[A-Z0-9][A-Z0-9\-]{3,}\b",
    r"\b\d{3}-\d{2}-\d{4}\b",
    r"\b\d{6,}\b",
]
_COMPILED = [re.compile(pattern, re.IGNORECASE) for pattern in _PATTERNS]
# IPv6: a run of hex groups and colons (two colons at least), kept only where it parses as an address
_IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:/\d{1,3})?(?![\w:])")
_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR")


def _ipv6(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _IPV6_CANDIDATE.finditer(text):
        try:
            ipaddress.IPv6Interface(match.group())
        except ValueError:
            continue
        spans.append(match.span())
    return spans


def _phones(text: str) -> list[tuple[int, int]]:
    if sum(c.isdigit() for c in text) < 5:  # no numbering plan has shorter numbers worth a search
        return []
    import phonenumbers  # its region metadata is loaded on first use, once per process

    return [
        (match.start, match.end)
        for region in _PHONE_REGIONS
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)
    ]


def spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` holds generic PHI: (start, end) pairs, sorted, possibly overlapping."""
    found = [match.span() for pattern in _COMPILED for match in pattern.finditer(text)]
    return sorted([*found, *_ipv6(text), *_phones(text)])
