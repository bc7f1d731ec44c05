"""The connection form (airflow_provider_aom/connection_form.py): one definition, the same form on every Airflow.

What the provider info declares (``conn-fields`` and ``ui-field-behaviour``, read by Airflow >= 3.2)
and the wtforms widgets older UIs build agree with :data:`FIELDS` and :data:`BEHAVIOUR`, and the
auth types offered are exactly those the connection accepts.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_aom import CONN_TYPE
from airflow_provider_aom.config import AUTH_TYPES
from airflow_provider_aom.connection_form import BEHAVIOUR, FIELDS, conn_fields, form_widgets, ui_field_behaviour
from airflow_provider_aom.get_provider_info import get_provider_info
from airflow_provider_aom.vocabulary import AuthType

BY_NAME = {field.name: field for field in FIELDS}


def connection_type() -> dict[str, Any]:
    (entry,) = get_provider_info()["connection-types"]
    assert entry["connection-type"] == CONN_TYPE
    return dict(entry)


def test_the_provider_info_declares_the_form_built_from_the_fields() -> None:
    entry = connection_type()
    assert entry["conn-fields"] == conn_fields()
    assert entry["ui-field-behaviour"] == ui_field_behaviour()
    assert list(conn_fields()) == [field.name for field in FIELDS]
    assert len(BY_NAME) == len(FIELDS), "no field twice"


def test_each_declared_field_carries_its_label_description_and_kind() -> None:
    for name, declared in conn_fields().items():
        field = BY_NAME[name]
        assert (declared["label"], declared["description"]) == (field.label, field.description)
        schema = declared["schema"]
        assert schema["type"] == ["integer" if field.kind == "integer" else "string", "null"], name
        assert (schema.get("format") == "password") is (field.kind == "password"), name
        assert schema.get("default") == field.default, name
    assert conn_fields()["security_token"]["schema"]["format"] == "password"
    assert conn_fields()["timeout"]["schema"] == {"type": ["integer", "null"], "default": 30}


def test_auth_type_offers_exactly_the_vocabularys_auth_types_and_an_empty_choice() -> None:
    assert BY_NAME["auth_type"].enum == tuple(a.value for a in AuthType) == AUTH_TYPES
    schema = conn_fields()["auth_type"]["schema"]
    assert schema["enum"] == [*(a.value for a in AuthType), None]
    assert schema["values_display"] == {"aksk": "aksk", "password": "password", "token": "token", "null": "(infer)"}
    assert [name for name, field in BY_NAME.items() if field.enum] == ["auth_type"]


def test_ui_field_behaviour_is_behaviour_with_hyphenated_keys() -> None:
    behaviour = ui_field_behaviour()
    assert behaviour == {
        "hidden-fields": BEHAVIOUR["hidden_fields"],
        "relabeling": BEHAVIOUR["relabeling"],
        "placeholders": BEHAVIOUR["placeholders"],
    }
    assert behaviour["hidden-fields"] == ["schema", "port"]
    standard = {"host", "login", "password", "schema", "port"}
    assert set(behaviour["relabeling"]) <= standard
    assert set(behaviour["placeholders"]) <= standard | set(BY_NAME), "a placeholder for a field the form has"


def test_every_field_is_an_extra_the_connection_reads() -> None:
    from airflow_provider_aom import config

    documented = config.__doc__ or ""
    for name in BY_NAME:
        assert f"``{name}``" in documented, name


def test_the_widgets_for_older_uis_are_the_same_fields() -> None:
    pytest.importorskip("flask_appbuilder")
    from wtforms import IntegerField, PasswordField, StringField

    widgets = form_widgets()
    assert list(widgets) == [field.name for field in FIELDS]
    for name, widget in widgets.items():
        kind = BY_NAME[name].kind
        expected = {"password": PasswordField, "integer": IntegerField}.get(kind, StringField)
        assert widget.field_class is expected, name
        assert widget.kwargs["description"] == BY_NAME[name].description


def test_the_hook_hands_airflow_a_copy_of_the_behaviour() -> None:
    """Airflow 2.11 rewrites the placeholders' keys of what the hook returns: the form's own must not change."""
    from airflow_provider_aom.hooks.aom import AomHook

    given = AomHook.get_ui_field_behaviour()
    given["placeholders"]["extra__huaweicloud_aom__region"] = given["placeholders"].pop("region")
    assert "region" in BEHAVIOUR["placeholders"] and "extra__huaweicloud_aom__region" not in BEHAVIOUR["placeholders"]
