"""Facts written twice, held together: the README's table of settings and their defaults against `Settings`
(each default is written once in the code), and the fake Immich's routes against the job's endpoint table
(method, path, permission, admin). Either side drifting fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from job.immich.endpoints import ENDPOINTS
from job.settings import Settings, load_settings
from tests.fake_immich.server import ROUTES

README = Path(__file__).resolve().parent.parent / "README.md"
BASE = {"IMMICH_URL": "http://immich:2283", "IMMICH_API_KEY": "k" * 40}
UNSET = {"none", "all yours", "(required)", ""}  # what the README writes for "no default"
EFFECTIVE = {"timezone": "UTC"}  # a default of None that the job reads as this value


def readme_rows() -> dict[str, str]:
    """Variable -> the README's default, from the Configuration table."""
    text = README.read_text()
    section = text[text.index("## Configuration"):text.index("## The API key")]
    return dict(re.findall(r"^\| `([A-Z0-9_]+)`[^|]*\|\s*([^|]*?)\s*\|", section, re.M))


def variable(name: str) -> str:
    alias = Settings.model_fields[name].validation_alias
    return alias if isinstance(alias, str) else alias.choices[0]


def default(name: str):
    field = Settings.model_fields[name]
    value = field.get_default(call_default_factory=True)
    return EFFECTIVE.get(name, value) if value is None else value


def test_every_setting_has_a_row_and_every_row_a_setting():
    rows = readme_rows()
    assert set(rows) == {variable(name) for name in Settings.model_fields}


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_the_readmes_default_is_the_settings_default(name):
    shown = readme_rows()[variable(name)]
    if shown == "(required)" or Settings.model_fields[name].is_required():
        assert shown == "(required)" and Settings.model_fields[name].is_required(), variable(name)
        return
    if shown in UNSET:
        assert not default(name), f"{variable(name)}: the README says there is none, Settings has {default(name)!r}"
        return
    value = shown.strip("`")
    parsed = getattr(load_settings({**BASE, variable(name): value}), name)
    assert parsed == default(name), f"{variable(name)}: the README says {shown}, Settings has {default(name)!r}"


def test_the_fake_serves_every_endpoint_the_job_calls_as_the_job_describes_it():
    def shape(path: str) -> str:
        return re.sub(r"\{\w+\}", "{}", path)

    fake = {(route.method, shape(route.template)): route for route in ROUTES}
    for name, endpoint in ENDPOINTS.items():
        route = fake.get((endpoint.method, shape(endpoint.path)))
        assert route is not None, f"the fake has no {endpoint.call} ({name})"
        assert (route.permission or None) == (endpoint.permission or None), f"{endpoint.call}: permissions differ"
        assert route.admin == endpoint.admin, f"{endpoint.call}: admin-only differs"
