"""Region codes (as vast.ai's `georegion` uses them) and the countries each covers."""

from __future__ import annotations

REGIONS: dict[str, frozenset[str]] = {
    "NA": frozenset({"US", "CA", "MX"}),
    "SA": frozenset({"BR", "AR", "CL", "CO", "PE", "UY"}),
    "EU": frozenset(
        {
            "DE",
            "FR",
            "NL",
            "GB",
            "SE",
            "NO",
            "FI",
            "PL",
            "ES",
            "IT",
            "CZ",
            "RO",
            "BG",
            "IS",
            "IE",
            "BE",
            "AT",
            "CH",
            "PT",
            "DK",
            "EE",
            "LT",
            "LV",
            "HU",
            "UA",
            "SK",
            "SI",
            "HR",
        }
    ),
    "AS": frozenset({"JP", "KR", "SG", "TW", "HK", "IN", "CN", "TH", "VN", "MY", "ID", "IL", "AE"}),
    "OC": frozenset({"AU", "NZ"}),
    "AF": frozenset({"ZA", "NG", "KE", "EG", "MA"}),
}


def countries_for(region: str) -> frozenset[str]:
    """Countries a region filter matches: a region code, or a single ISO country code.

    Raises ValueError for anything else, so a typo is an error rather than an empty result.
    """
    code = region.strip().upper()
    if code in REGIONS:
        return REGIONS[code]
    if len(code) == 2 and code.isalpha():
        return frozenset({code})
    known = ", ".join(sorted(REGIONS))
    raise ValueError(f"unknown region {region!r}: use one of {known} or a 2-letter country code")


def region_of(country: str) -> str | None:
    for code, countries in REGIONS.items():
        if country.upper() in countries:
            return code
    return None
