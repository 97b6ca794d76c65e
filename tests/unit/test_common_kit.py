"""The common kit's public surface: `from services.common import …` gives every name services build on, and
loads only the module it comes from (a tool reading its settings does not start eventlet)."""

import subprocess
import sys

import services.common as common


def test_every_public_name_is_listed_once_and_resolves():
    assert sorted(common.__all__) == sorted(common._HOME_OF)
    assert len(common.__all__) == len(set(common.__all__))
    for name in common.__all__:
        assert getattr(common, name) is not None


def test_a_tool_reading_settings_loads_neither_nameko_nor_eventlet():
    probe = ("import sys, services.common.settings, services.common.auth;"
             "print(sorted({'nameko', 'eventlet'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_role_tuples_name_declared_roles_only():
    for name in ("ANYONE", "ANYONE_OR_LINK", "PATRON_OR_STAFF", "PATRON_STAFF_OR_LINK", "STAFF", "TEAM", "ANALYST",
                 "OPS"):
        assert set(getattr(common, name)) <= set(common.ROLES), name
    # "Anyone" is anyone signed in: a patron link opens only the routes that name it.
    assert "reservation-link" not in common.ANYONE and common.ANYONE_OR_LINK == common.ROLES
