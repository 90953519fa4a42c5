"""Hearth's one helpline catalogue, loaded from ``config/crisis_resources.toml`` and validated.

Everything that shows a crisis line reads this catalogue: the member's private message when an
escalation opens (:func:`moderation.escalation.member_resources_content`), the reply to ``!region``,
and each space's pinned crisis lines (:meth:`CrisisResources.pinned_lines`, filled into the themes
by :func:`spaces.themes.load_themes`). ``catalogue.resources_for(locale)`` picks the set for a locale
or region (``en-US``, ``en_GB.UTF-8``, ``IE``, ``uk`` ...) or the ``default`` one;
:func:`choose_region` decides which region a member gets.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "config" / "crisis_resources.toml"

# Common non-ISO spellings of a region.
_REGION_ALIASES = {"UK": "GB"}
# Lower-case bare codes read as countries (others, like "en" or "fr", are languages).
_BARE_COUNTRIES = {"us", "uk", "gb", "ie", "ca", "au", "nz"}


class ResourceConfigError(ValueError):
    """The crisis resources file is unreadable or invalid; the message names file, key and reason."""


class Service(BaseModel):
    """One help service. At least one of ``phone``, ``text`` or ``url`` is required."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    phone: str | None = None  # number to call, as people dial it
    text: str | None = None  # how to text, e.g. "text 988" or "text SHOUT to 85258"
    url: str | None = None
    hours: str | None = None  # e.g. "24/7"
    description: str | None = None
    themes: tuple[str, ...] = ()  # only for these spaces' themes (by slug); empty: for everyone

    def serves(self, theme: str | None) -> bool:
        """Whether this service is offered in a space of ``theme`` (None: outside any space)."""
        return not self.themes or (theme is not None and theme in self.themes)

    @model_validator(mode="after")
    def _reachable(self) -> Service:
        if not (self.phone or self.text or self.url):
            raise ValueError("a service needs at least one of phone, text or url")
        return self

    @field_validator("url")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("https://"):
            raise ValueError("url must start with https://")
        return v

    def how_to_reach(self) -> str:
        """``call 988 or text 988``-style summary for a message."""
        ways = []
        if self.phone:
            ways.append(f"call {self.phone}")
        if self.text:
            ways.append(self.text)
        if not ways and self.url:
            ways.append(f"visit {self.url}")
        return " or ".join(ways)


class ResourceSet(BaseModel):
    """Services for one region (ISO 3166-1 alpha-2 code, or ``default``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    region: str
    name: str = Field(min_length=1)
    emergency: str = Field(min_length=1)  # "911", "999 or 112", "your local emergency number"
    services: tuple[Service, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _has_a_line_for_everyone(self) -> ResourceSet:
        if not any(not svc.themes for svc in self.services):
            raise ValueError("a region needs at least one service without `themes` (its main line)")
        return self

    def services_for(self, theme: str | None) -> tuple[Service, ...]:
        """The services offered in a space of ``theme``: its own first (a bereavement line in the grief
        space), then everyone's, in file order."""
        own = tuple(svc for svc in self.services if svc.themes and svc.serves(theme))
        return own + tuple(svc for svc in self.services if not svc.themes)

    @property
    def main_line(self) -> Service:
        """The region's first service for everyone."""
        return next(svc for svc in self.services if not svc.themes)


class CrisisResources(BaseModel):
    """The whole catalogue; ``regions`` must include ``default`` (the international fallback)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    regions: dict[str, ResourceSet]

    @model_validator(mode="after")
    def _has_default(self) -> CrisisResources:
        if "default" not in self.regions:
            raise ValueError("a [regions.default] set (international fallback) is required")
        return self

    @property
    def codes(self) -> list[str]:
        """The regions with lines of their own (not ``default``), in file order."""
        return [k for k in self.regions if k != "default"]

    def known(self, region: str | None) -> str | None:
        """``region`` (any spelling :func:`region_of` reads) as a catalogue code, or None if it has no set."""
        code = region_of(region)
        return code if code in self.regions and code != "default" else None

    def check_themes(self, slugs: Collection[str], *, source: str = "crisis_resources.toml") -> None:
        """Raise :class:`ResourceConfigError` naming every ``themes`` entry that is no theme's slug."""
        problems = [
            f"regions.{code}.services[{i}].themes: no theme is called {slug!r}"
            for code, rs in self.regions.items()
            for i, svc in enumerate(rs.services)
            for slug in svc.themes
            if slug not in slugs
        ]
        if problems:
            raise ResourceConfigError(f"{source}: " + "; ".join(problems))

    def pinned_lines(self, region: str | None, theme: str | None) -> list[dict[str, str]]:
        """The crisis lines a space shows (``label``, ``contact``, ``region``, ``url``), emergency first.

        A space with a region gets that region's services for its theme, then the international
        ones; a space without one gets every region's main line (and its theme's own lines), then
        the international ones, so a member anywhere finds something.
        """
        code = self.known(region)
        fallback = self.regions["default"]
        if code:
            rs = self.regions[code]
            lines = [_line("Emergency services", rs.emergency, rs.name)]
            lines += [_service_line(svc, rs.name) for svc in rs.services_for(theme)]
        else:
            emergencies = ", ".join(
                f"{self.regions[c].emergency} in {self.regions[c].name}" for c in self.codes
            )
            anywhere = fallback.emergency[:1].upper() + fallback.emergency[1:]
            lines = [_line("Emergency services", f"{anywhere}; {emergencies}", fallback.name)]
            for c in self.codes:
                rs = self.regions[c]
                lines += [_service_line(svc, rs.name) for svc in rs.services_for(theme) if svc.themes]
                lines.append(_service_line(rs.main_line, rs.name))
        lines += [_service_line(svc, fallback.name) for svc in fallback.services_for(theme)]
        return lines

    def resources_for(self, locale: str | None) -> ResourceSet:
        """The set for ``locale``'s country (``en-US`` -> US, ``en_GB.UTF-8`` -> GB, ``ie`` -> IE),
        else ``default``."""
        region = region_of(locale)
        if region and region in self.regions:
            return self.regions[region]
        return self.regions["default"]


def choose_region(*, member: str | None, space: str | None, operator: str | None) -> str | None:
    """The region a member's help is for: their own choice, else the space's, else the operator's
    default, else None (the international fallback). Each is a catalogue code or None."""
    return member or space or operator


def _line(label: str, contact: str, region: str, url: str | None = None) -> dict[str, str]:
    out = {"label": label, "contact": contact, "region": region}
    if url:
        out["url"] = url
    return out


def _service_line(svc: Service, region: str) -> dict[str, str]:
    how = svc.how_to_reach()
    contact = how[:1].upper() + how[1:] + (f", {svc.hours}" if svc.hours else "")
    return _line(svc.name, contact, region, svc.url)


def region_of(locale: str | None) -> str | None:
    """The region code in a locale or country string, upper-cased, or None (``en`` has none)."""
    if not locale:
        return None
    tag = locale.split(".", 1)[0].split("@", 1)[0].replace("_", "-").strip()
    parts = [p for p in tag.split("-") if p]
    if not parts:
        return None
    if len(parts) == 1:
        # A bare code: "US", "gb", "uk" are regions; a bare lower-case language like "en" is not.
        code = parts[0]
        if len(code) == 2 and code.isalpha() and (code.isupper() or code.lower() in _BARE_COUNTRIES):
            return _REGION_ALIASES.get(code.upper(), code.upper())
        return None
    for p in parts[1:]:
        if len(p) == 2 and p.isalpha():
            return _REGION_ALIASES.get(p.upper(), p.upper())
    return None


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_crisis_resources(data: dict[str, Any], *, source: str = "<data>") -> CrisisResources:
    """Validate already-parsed TOML data; each region's code is filled in from its key."""
    try:
        regions = data.get("regions")
        if isinstance(regions, dict):
            data = {
                **data,
                "regions": {k: {"region": k, **v} if isinstance(v, dict) else v for k, v in regions.items()},
            }
        return CrisisResources.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{_loc(tuple(e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ResourceConfigError(f"{source}: {problems}") from exc


def load_crisis_resources(path: Path = DEFAULT_PATH) -> CrisisResources:
    """Read and validate the crisis resources file; :class:`ResourceConfigError` names what is wrong."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResourceConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ResourceConfigError(f"{path}: invalid TOML ({exc})") from exc
    return parse_crisis_resources(raw, source=str(path))


def resources_for(locale: str | None, catalogue: CrisisResources) -> ResourceSet:
    """Module-level spelling of :meth:`CrisisResources.resources_for`."""
    return catalogue.resources_for(locale)
