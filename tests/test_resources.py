"""Crisis resources: the shipped file is valid, locales pick the right country, errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.resources import (
    DEFAULT_PATH,
    ResourceConfigError,
    choose_region,
    load_crisis_resources,
    region_of,
    resources_for,
)


@pytest.fixture(scope="module")
def catalogue():
    return load_crisis_resources()


@pytest.mark.parametrize(
    ("locale", "region", "must_mention"),
    [
        ("en-US", "US", "988"),
        ("en_US.UTF-8", "US", "988"),
        ("US", "US", "988"),
        ("en-GB", "GB", "116 123"),
        ("uk", "GB", "116 123"),
        ("en-UK", "GB", "116 123"),
        ("ga-IE", "IE", "116 123"),
        ("fr-CA", "CA", "988"),
        ("en-AU", "AU", "13 11 14"),
        ("en-NZ", "NZ", "1737"),
    ],
)
def test_locale_picks_country(catalogue, locale, region, must_mention):
    rs = catalogue.resources_for(locale)
    assert rs.region == region
    assert any(must_mention in (s.phone or "") + (s.text or "") for s in rs.services)


@pytest.mark.parametrize("locale", [None, "", "en", "de-DE", "pt_BR", "zz-ZZ", "garbage!"])
def test_unknown_or_missing_locale_falls_back_to_international(catalogue, locale):
    rs = resources_for(locale, catalogue)
    assert rs.region == "default"
    assert any(s.url == "https://findahelpline.com" for s in rs.services)
    assert "emergency" in rs.emergency


def test_required_services_present(catalogue):
    us = catalogue.regions["US"].services[0]
    assert (us.phone, us.text) == ("988", "text 988")
    assert catalogue.regions["GB"].services[0].phone == "116 123"
    assert catalogue.regions["IE"].services[0].phone == "116 123"
    assert catalogue.regions["CA"].services[0].phone == "988"
    assert catalogue.regions["AU"].services[0].phone == "13 11 14"
    assert us.how_to_reach() == "call 988 or text 988"


def test_region_of():
    assert region_of("en-GB") == "GB"
    assert region_of("en") is None
    assert region_of("es-419") is None  # a UN M.49 area, not a country


def _write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "crisis_resources.toml"
    p.write_text(body, encoding="utf-8")
    return p


def test_error_names_file_key_and_reason(tmp_path):
    p = _write(
        tmp_path,
        """
[regions.default]
name = "International"
emergency = "112"
[[regions.default.services]]
name = "Find A Helpline"
url = "https://findahelpline.com"

[regions.US]
name = "United States"
emergency = "911"
[[regions.US.services]]
name = "Nothing to reach"
""",
    )
    with pytest.raises(ResourceConfigError) as info:
        load_crisis_resources(p)
    msg = str(info.value)
    assert str(p) in msg
    assert "regions.US.services[0]" in msg
    assert "at least one of phone, text or url" in msg


def test_default_region_required(tmp_path):
    p = _write(
        tmp_path,
        """
[regions.US]
name = "United States"
emergency = "911"
[[regions.US.services]]
name = "988"
phone = "988"
""",
    )
    with pytest.raises(ResourceConfigError, match=r"regions\.default.*required"):
        load_crisis_resources(p)


def test_http_url_and_unknown_key_refused(tmp_path):
    p = _write(
        tmp_path,
        """
[regions.default]
name = "International"
emergency = "112"
[[regions.default.services]]
name = "Somewhere"
url = "http://insecure.example"
number = "123"
""",
    )
    with pytest.raises(ResourceConfigError) as info:
        load_crisis_resources(p)
    assert "regions.default.services[0].url: Value error, url must start with https://" in str(info.value)
    assert "regions.default.services[0].number: Extra inputs are not permitted" in str(info.value)


def test_unreadable_and_invalid_toml(tmp_path):
    with pytest.raises(ResourceConfigError, match="cannot read"):
        load_crisis_resources(tmp_path / "missing.toml")
    with pytest.raises(ResourceConfigError, match="invalid TOML"):
        load_crisis_resources(_write(tmp_path, "[regions\n"))


def test_default_path_is_the_shipped_file():
    assert DEFAULT_PATH.name == "crisis_resources.toml"
    assert DEFAULT_PATH.parent.name == "config"


def test_a_space_with_a_region_pins_that_regions_lines_emergency_first(catalogue):
    lines = catalogue.pinned_lines("GB", "grief-loss")
    assert lines[0] == {"label": "Emergency services", "contact": "999 (or 112)", "region": "United Kingdom"}
    labels = [line["label"] for line in lines]
    assert labels[1:4] == ["Cruse Bereavement Support", "Samaritans", "Shout"]  # the theme's own line first
    assert labels[-1] == "Find A Helpline"  # and the international directory, for members elsewhere
    assert "988 Suicide & Crisis Lifeline" not in labels
    assert "Cruse Bereavement Support" not in [
        x["label"] for x in catalogue.pinned_lines("GB", "anxiety-panic")
    ]


def test_a_space_without_a_region_pins_every_regions_main_line(catalogue):
    lines = catalogue.pinned_lines(None, "addiction-recovery")
    labels = [line["label"] for line in lines]
    assert lines[0]["label"] == "Emergency services"
    for needed in ("911 in United States", "999 (or 112) in United Kingdom", "000 in Australia"):
        assert needed in lines[0]["contact"]
    for main in ("988 Suicide & Crisis Lifeline", "Samaritans", "Lifeline", "SAMHSA National Helpline"):
        assert main in labels
    assert "Shout" not in labels  # second lines stay for spaces of that region
    assert all(line["contact"][0].isupper() for line in lines)


def test_themes_limit_a_service_and_every_region_keeps_a_line_for_everyone(tmp_path):
    catalogue = load_crisis_resources()
    us = catalogue.regions["US"]
    assert [s.name for s in us.services_for(None)] == ["988 Suicide & Crisis Lifeline"]
    assert [s.name for s in us.services_for("addiction-recovery")][0] == "SAMHSA National Helpline"
    bad = tmp_path / "r.toml"
    bad.write_text(
        '[regions.default]\nname = "International"\nemergency = "112"\n'
        '[[regions.default.services]]\nname = "X"\nurl = "https://x.example"\nthemes = ["grief-loss"]\n'
    )
    with pytest.raises(ResourceConfigError, match=r"regions\.default: .*main line"):
        load_crisis_resources(bad)


def test_unknown_theme_names_are_refused_with_their_key(catalogue):
    with pytest.raises(
        ResourceConfigError, match=r"regions\.GB\.services\[2\]\.themes: no theme is called 'grief-loss'"
    ):
        catalogue.check_themes({"anxiety-panic"}, source="crisis_resources.toml")
    catalogue.check_themes({"grief-loss", "addiction-recovery", "trauma-ptsd", "new-parents"})


def test_region_choice_order_and_spellings(catalogue):
    assert choose_region(member="US", space="GB", operator="IE") == "US"
    assert choose_region(member=None, space="GB", operator="IE") == "GB"
    assert choose_region(member=None, space=None, operator="IE") == "IE"
    assert choose_region(member=None, space=None, operator=None) is None
    assert catalogue.known("uk") == "GB"
    assert catalogue.known("gb") == "GB"
    assert catalogue.known("FR") is None  # no lines of its own: the member is told so
    assert catalogue.known("default") is None
    assert catalogue.codes[:2] == ["US", "GB"]  # file order
