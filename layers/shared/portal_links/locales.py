"""Which of Stripe's portal locales to ask for: the client's explicit choice, else the browser's languages."""

from __future__ import annotations

from portal_links.errors import InvalidParameter

# The portal session's accepted `locale` values (shared/reference/003).
STRIPE_LOCALES = (
    "auto bg cs da de el en en-AU en-CA en-GB en-IE en-IN en-NZ en-SG es es-419 et fi fil fr fr-CA hr hu "
    "id it ja ko lt lv ms mt nb nl pl pt pt-BR ro ru sk sl sv th tr vi zh zh-HK zh-TW"
).split()
_BY_LOWER = {locale.lower(): locale for locale in STRIPE_LOCALES}
# Tags whose nearest Stripe locale is not found by dropping subtags.
_ALIASES = {
    "zh-hant": "zh-TW",
    "zh-hant-tw": "zh-TW",
    "zh-hant-hk": "zh-HK",
    "zh-hant-mo": "zh-HK",
    "zh-mo": "zh-HK",
    "zh-hans": "zh",
    "zh-cn": "zh",
    "zh-sg": "zh",
    "no": "nb",
    "nn": "nb",
    "tl": "fil",
    "es-es": "es",
}
MAX_ACCEPT_LANGUAGE = 512


def explicit_locale(value: str) -> str:
    locale = _BY_LOWER.get(value.strip().lower())
    if locale is None:
        raise InvalidParameter(
            "locale must be one of Stripe's portal locales, e.g. en, de, pt-BR", param="locale"
        )
    return locale


def negotiate_locale(requested: str | None, accept_language: str | None, default: str) -> str:
    if requested is not None:
        return explicit_locale(requested)
    for tag in _ranked_tags(accept_language or ""):
        locale = _stripe_locale_for(tag)
        if locale is not None:
            return locale
    return default


def _ranked_tags(header: str) -> list[str]:
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header[:MAX_ACCEPT_LANGUAGE].split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and tag != "*" and quality > 0:
            ranked.append((-quality, position, tag.strip().lower()))
    return [tag for _, _, tag in sorted(ranked)]


def _stripe_locale_for(tag: str) -> str | None:
    subtags = tag.replace("_", "-").split("-")
    language = subtags[0]
    if language == "es" and len(subtags) > 1 and subtags[-1] not in ("es", "419"):
        return "es-419"  # Spanish for any Latin American region
    candidates = ["-".join(subtags[:n]) for n in range(len(subtags), 0, -1)]
    # Drop a script subtag (sr-Latn-RS → sr-RS) before falling back to the language alone.
    if len(subtags) == 3 and len(subtags[1]) == 4:
        candidates.insert(1, f"{language}-{subtags[2]}")
    for candidate in candidates:
        found = _ALIASES.get(candidate) or _BY_LOWER.get(candidate)
        if found is not None:
            return found
    return None
