"""The connection form of ``huaweicloud_aom``, defined once for every Airflow UI.

Airflow ≥ 3.2 reads the declarative ``conn-fields`` / ``ui-field-behaviour``
from the provider info (no hook import); Airflow 2.11 to 3.1 call the hook's
``get_connection_form_widgets()`` / ``get_ui_field_behaviour()``. Both are built
from :data:`FIELDS` and :data:`BEHAVIOUR`, so the two forms cannot drift apart.
Values are stored unprefixed in ``extra``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from airflow_provider_aom.vocabulary import MAX_SETTING_SECONDS, AuthType

FieldKind = Literal["string", "password", "integer"]


@dataclass(frozen=True)
class FormField:
    """One extra field of the form, stored unprefixed in ``extra``."""

    name: str
    label: str
    description: str
    #: "password" fields are masked in the UI; "integer" ones are numbers.
    kind: FieldKind = "string"
    enum: tuple[str, ...] = ()
    default: Any = None


FIELDS: tuple[FormField, ...] = (
    FormField(
        "auth_type",
        "Auth type",
        "aksk (Login = Access Key ID, Password = Secret Access Key), password (Login = IAM user, Password = its "
        "password, plus Account name) or token (Password = IAM token). Empty: inferred.",
        enum=tuple(a.value for a in AuthType),
    ),
    FormField(
        "region", "Region", "Region id, e.g. cn-north-4 (Automation: cn-north-4, cn-east-3, cn-east-2, cn-south-1)."
    ),
    FormField("project_id", "Project ID", "32-character project id; empty: looked up in IAM by region."),
    FormField("domain_name", "Account name", "Account (domain) name of the IAM user; password auth only."),
    FormField("iam_endpoint", "IAM endpoint", "Default https://iam.{region}.myhuaweicloud.com."),
    FormField("security_token", "Security token", "Temporary AK/SK only (X-Security-Token).", kind="password"),
    FormField(
        "user_name",
        "IAM user name",
        "The IAM user this connection acts as; an execution adopted after an ambiguous submit must have been "
        "created by it. Empty: looked up in IAM (set it for temporary AK/SK).",
    ),
    FormField("verify", "Verify TLS", "true, false, or the path of a CA bundle.", default="true"),
    FormField(
        "timeout",
        "Timeout (s)",
        "Seconds for one HTTP exchange: connect, send and the whole answer.",
        kind="integer",
        default=30,
    ),
)

BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["schema", "port"],
    "relabeling": {
        "host": "AOM endpoint (optional)",
        "login": "Access Key ID / IAM user",
        "password": "Secret Access Key / IAM password / IAM token",
    },
    "placeholders": {
        "host": "empty = https://aom.{region}.myhuaweicloud.com",
        "login": "aksk: Access Key ID; password: IAM user name; token: leave empty",
        "password": "aksk: Secret Access Key; password: IAM password; token: the IAM token",
        "region": "cn-north-4",
        "project_id": "0123456789abcdef0123456789abcdef",
        "domain_name": "my-account",
        "iam_endpoint": "https://iam.cn-north-4.myhuaweicloud.com",
        "auth_type": "aksk | password | token",
    },
}


def conn_fields() -> dict[str, Any]:
    """``conn-fields`` for ``get_provider_info()`` (JSON Schema per field)."""
    result: dict[str, Any] = {}
    for field in FIELDS:
        schema: dict[str, Any] = {"type": ["integer" if field.kind == "integer" else "string", "null"]}
        if field.kind == "password":
            schema["format"] = "password"
        if field.enum:
            schema["enum"] = [*field.enum, None]
            # The UI labels each option; without this the empty choice reads "null".
            schema["values_display"] = {**{value: value for value in field.enum}, "null": "(infer)"}
        if field.default is not None:
            schema["default"] = field.default
        result[field.name] = {"label": field.label, "description": field.description, "schema": schema}
    return result


def ui_field_behaviour() -> dict[str, Any]:
    """``ui-field-behaviour`` for ``get_provider_info()`` (hyphenated keys)."""
    # Copies: the provider manager may rewrite what it is given.
    return {
        "hidden-fields": list(BEHAVIOUR["hidden_fields"]),
        "relabeling": dict(BEHAVIOUR["relabeling"]),
        "placeholders": dict(BEHAVIOUR["placeholders"]),
    }


def form_widgets() -> dict[str, Any]:
    """wtforms widgets for Airflow 2.11 to 3.1 (imported here, never at module import)."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import IntegerField, PasswordField, StringField
    from wtforms.validators import NumberRange, Optional, any_of

    widgets: dict[str, Any] = {}
    for field in FIELDS:
        label = lazy_gettext(field.label)
        if field.kind == "password":
            widgets[field.name] = PasswordField(label, widget=BS3PasswordFieldWidget(), description=field.description)
        elif field.kind == "integer":
            widgets[field.name] = IntegerField(
                label,
                widget=BS3TextFieldWidget(),
                validators=[Optional(), NumberRange(min=1, max=int(MAX_SETTING_SECONDS))],
                default=field.default,
                description=field.description,
            )
        else:
            validators = [Optional(), any_of(list(field.enum))] if field.enum else [Optional()]
            widgets[field.name] = StringField(
                label,
                widget=BS3TextFieldWidget(),
                validators=validators,
                default=field.default,
                description=field.description,
            )
    return widgets
