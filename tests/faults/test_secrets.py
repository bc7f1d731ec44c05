"""Secrets never show: not in logs, XCom, rendered templates, exception messages or repr().

An emulator of its own holds distinctive credentials (secret key, temporary secret key and
security token, IAM password, static token). Real DAG runs in every auth mode, and failing
runs with a wrong secret key and a wrong IAM password, are captured completely (caplog at
DEBUG, stdout/stderr, task log files if any, every XCom, the rendered template fields),
and no secret value, nor any IAM token the emulator issued, may appear anywhere. The
masker spy checks that the provider registers each secret with Airflow's secrets masker
where it reads it (``airflow.providers.common.compat.sdk.mask_secret``, the name the
provider calls).
"""

from __future__ import annotations

import glob
import importlib
import json
import logging
import os
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aom import api
from airflow_provider_aom.auth.signer import canonical_request, signed_header_names
from airflow_provider_aom.auth.tokens import TOKEN_CACHE
from airflow_provider_aom.auth_flow import FetchToken, Send
from airflow_provider_aom.config import AomConnectionConfig
from airflow_provider_aom.emulator import AomEmulator, EmulatorConfig, default_workflows
from airflow_provider_aom.exceptions import AomAuthenticationError
from airflow_provider_aom.hooks.aom import AomHook
from airflow_provider_aom.wire import ApiResponse
from tests.conftest import AUTH_MODES, QUICK_WORKFLOWS, UseConnection, connection_exporter, reset_client_state
from tests.dags.dagrun import AIRFLOW_3, load_test_dag, run, task_states
from tests.faults import PROJECT

SECRET_KEY = "SKsecret-Qz7Wm3Pv9Lk2Rt8Yx4Nb6Hd1Jf5Gs0Ac"
TEMP_SECRET_KEY = "TSKsecret-Vb3Nm8Kq2Wz7Lp4Xr9Ty6Hg1Df5Sa0"
SECURITY_TOKEN = "STSsecret-Ju8Hy7Gt6Fr5De4Sw3Aq2Zx1Cv0Bn"
IAM_PASSWORD = "IAMsecret-Pw9Ol8Ik7Uj6Yh5Tg4Rf3Ed2Ws1Qa"
STATIC_TOKEN = "MIIsecret-Static-Mn0Bv9Cx8Za7Sd6Fg5Hj4Kl3"
WRONG_SECRET_KEY = "WRONGsk-Xc4Vb5Nm6Qw7Er8Ty9Ui0Op1As2Df3Gh"
WRONG_PASSWORD = "WRONGpw-Lk9Jh8Gf7Ds6Sa5Qw4Er3Ty2Ui1Op0"

#: What each auth mode's connection holds, and must therefore be masked.
MODE_SECRETS = {
    "aksk": {SECRET_KEY},
    "temp_aksk": {TEMP_SECRET_KEY, SECURITY_TOKEN},
    "password": {IAM_PASSWORD},
    "token": {STATIC_TOKEN},
}
ALL_SECRETS = {SECRET_KEY, TEMP_SECRET_KEY, SECURITY_TOKEN, IAM_PASSWORD, STATIC_TOKEN}


def credentials(mode: str) -> dict[str, Any]:
    """Connection overrides that put this module's secrets in place of the emulator defaults."""
    if mode == "aksk":
        return {"password": SECRET_KEY}
    if mode == "temp_aksk":
        return {"password": TEMP_SECRET_KEY, "extra": {"security_token": SECURITY_TOKEN}}
    if mode == "password":
        return {"password": IAM_PASSWORD}
    return {"password": STATIC_TOKEN}


@pytest.fixture(scope="module")
def vault() -> Iterator[AomEmulator]:
    config = EmulatorConfig(
        sk=SECRET_KEY,
        temp_sk=TEMP_SECRET_KEY,
        security_token=SECURITY_TOKEN,
        iam_password=IAM_PASSWORD,
        static_tokens=[STATIC_TOKEN],
        workflows=[*default_workflows(), *QUICK_WORKFLOWS],
    )
    with AomEmulator(config) as emulator:
        yield emulator


@pytest.fixture
def secret_connection(vault: AomEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[UseConnection]:
    """``secret_connection(mode, **overrides)``: aom_default against the vault emulator, with this module's secrets."""
    reset_client_state(vault)
    yield connection_exporter(vault, monkeypatch, defaults=credentials)
    vault.state.clear_faults()
    TOKEN_CACHE.clear()


@pytest.fixture
def masked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every value the provider hands to ``mask_secret`` (the real masker still runs)."""
    import airflow.providers.common.compat.sdk as compat

    real = compat.mask_secret
    values: list[str] = []

    def spy(secret: Any, name: str | None = None) -> None:
        values.append(secret)
        if name is None:
            real(secret)
        else:
            real(secret, name)

    monkeypatch.setattr(compat, "mask_secret", spy)
    # The hooks bind it when imported (the config module looks it up at each call).
    monkeypatch.setattr("airflow_provider_aom.hooks.aom.mask_secret", spy)
    return values


def issued_tokens(emulator: AomEmulator) -> set[str]:
    """Every IAM token the emulator handed out (they are secrets too)."""
    return set(emulator.state._tokens)


def run_records(dag_run: Any) -> str:
    """Every XCom and the rendered template fields of the run, as text."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    # The XCom table's model: XComModel on Airflow 3, XCom on 2.11.
    XCom: Any = getattr(importlib.import_module("airflow.models.xcom"), "XComModel" if AIRFLOW_3 else "XCom")

    with create_session() as session:
        xcoms = session.query(XCom).filter(XCom.dag_id == dag_run.dag_id, XCom.run_id == dag_run.run_id).all()
        rendered = (
            session.query(RenderedTaskInstanceFields)
            .filter(
                RenderedTaskInstanceFields.dag_id == dag_run.dag_id,
                RenderedTaskInstanceFields.run_id == dag_run.run_id,
            )
            .all()
        )
        parts = [f"xcom {x.task_id} {x.key} = {x.value!r}" for x in xcoms]
        parts += [f"rendered {r.task_id} = {r.rendered_fields!r}" for r in rendered]
    return "\n".join(parts)


def task_log_files() -> str:
    files = glob.glob(os.path.join(os.environ["AIRFLOW_HOME"], "logs", "**", "*"), recursive=True)
    return "\n".join(Path(f).read_text(errors="replace") for f in files if os.path.isfile(f))


def assert_no_secret(text: str, secrets: set[str]) -> None:
    for secret in secrets:
        assert secret not in text, f"secret {secret[:9]}… leaked"


@pytest.fixture
def everything(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Any:
    """Call it after the run: caplog (DEBUG), stdout/stderr and task log files, as one text.

    httpcore's DEBUG trace stays at INFO here: it is checked on its own by
    test_transport_debug_logs_hold_no_iam_token (a known leak, see there).
    """
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="airflow_provider_aom")
    caplog.set_level(logging.INFO, logger="httpcore")

    def collect() -> str:
        out, err = capfd.readouterr()
        return "\n".join([caplog.text, out, err, task_log_files()])

    return collect


# --------------------------------------------------------------------------- DAG runs


@pytest.mark.dag
@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("mode", AUTH_MODES)
def test_dag_run_shows_no_secret(
    mode: str, secret_connection: Any, vault: AomEmulator, masked: list[str], everything: Any
) -> None:
    secret_connection(mode)
    before = issued_tokens(vault)
    if mode == "password":
        # A renewal mid-wait, so the async hook's token path runs too.
        vault.state.add_fault("expire_token", method="GET", path=r"/status$")
    dag_run = run(load_test_dag("aom_wait_success_deferrable"))
    text = everything()
    records = run_records(dag_run)
    tokens = issued_tokens(vault) - before

    assert task_states(dag_run) == {"run": "success"}
    [execution] = vault.state.executions()
    # The capture is real: it holds the run's execution id (logs) and its XComs.
    assert execution["execution_id"] in text
    assert execution["execution_id"] in records and "execution_detail" in records
    assert_no_secret(text + records, ALL_SECRETS | tokens)

    # Masked where read: the connection's secrets, and every token the provider obtained.
    assert MODE_SECRETS[mode] | tokens <= set(masked)
    if mode == "password":
        assert len(tokens) == 2, "the renewal happened"
    from airflow.providers.common.compat.sdk import redact

    for secret in MODE_SECRETS[mode] | tokens:
        assert secret not in str(redact(f"value {secret} here"))


@pytest.mark.dag
@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize(
    ("mode", "wrong"), [("aksk", WRONG_SECRET_KEY), ("password", WRONG_PASSWORD)], ids=["wrong-sk", "wrong-password"]
)
def test_failing_run_shows_no_secret(
    mode: str, wrong: str, secret_connection: Any, vault: AomEmulator, masked: list[str], everything: Any
) -> None:
    secret_connection(mode, password=wrong)
    dag_run = run(load_test_dag("aom_fail_once"), conf={"workflow_id": "wf-success"})
    text = everything()
    records = run_records(dag_run)

    assert task_states(dag_run) == {"run": "failed"}
    assert "AomAuthenticationError" in text, "the failure and its message were captured"
    assert vault.state.executions() == []
    assert_no_secret(text + records, ALL_SECRETS | {wrong})
    assert wrong in masked


@pytest.mark.parametrize(
    ("mode", "wrong"), [("aksk", WRONG_SECRET_KEY), ("password", WRONG_PASSWORD), ("token", "MIIwrong-" + "t" * 30)]
)
def test_authentication_errors_carry_no_secret(
    mode: str, wrong: str, secret_connection: Any, vault: AomEmulator, masked: list[str]
) -> None:
    secret_connection(mode, password=wrong)
    with pytest.raises(AomAuthenticationError) as info:
        AomHook().execute_workflow("wf-success")
    error = info.value
    formatted = traceback.format_exception(type(error), error, error.__traceback__)
    rendered = "\n".join([str(error), repr(error), repr(error.args), *formatted])
    assert error.request_id and error.request_id in str(error)
    assert_no_secret(rendered, ALL_SECRETS | {wrong})
    assert wrong in masked


# --------------------------------------------------------------------------- repr()


@pytest.mark.parametrize("mode", AUTH_MODES)
def test_reprs_hold_no_secret(mode: str, secret_connection: Any, vault: AomEmulator, masked: list[str]) -> None:
    secret_connection(mode)
    hook = AomHook()
    execution_id = hook.execute_workflow("wf-success")
    protocol = hook.protocol
    token = TOKEN_CACHE.get(protocol._token_key) if mode == "password" else None
    prepared = [
        protocol.prepare(request, PROJECT, token)
        for request in (
            api.execute_workflow("wf-success").request(PROJECT),
            api.get_execution("wf-success", execution_id).request(PROJECT),
            api.list_executions("wf-success").request(PROJECT),
            api.terminate_execution("wf-success", execution_id).request(PROJECT),
            api.list_workflows(page=1).request(PROJECT),
        )
    ]
    objects: list[Any] = [hook, hook.config, protocol, protocol.token_cache, token, *prepared]
    text = "\n".join(repr(o) for o in objects) + "\n" + str(hook.config)
    assert "wf-success" in text
    assert_no_secret(text, ALL_SECRETS | issued_tokens(vault))
    # The prepared requests do carry the credential (headers), hidden from repr only.
    if mode in ("token", "password"):
        assert all(p.headers["X-Auth-Token"] for p in prepared)
    assert MODE_SECRETS[mode] <= set(masked)


def test_iam_token_request_repr_holds_no_password(secret_connection: Any) -> None:
    secret_connection("password")
    http = AomHook().protocol._token_request()
    text = "\n".join([repr(http), repr(http.api), repr(FetchToken("key", http, 0.0)), repr(Send(http, 0.0))])
    assert IAM_PASSWORD not in text


def test_gateway_echo_of_the_signed_request_is_scrubbed(
    secret_connection: Any, monkeypatch: pytest.MonkeyPatch, masked: list[str]
) -> None:
    """A gateway that rejects a temporary-key signature the way reference §3.2 describes APIG doing it."""
    secret_connection("temp_aksk")
    hook = AomHook()

    def gateway(request: Any, deadline: float) -> ApiResponse:
        names = signed_header_names(request.headers)
        canonical = canonical_request(request.method, request.api.path, "", request.headers, names, request.body)
        # Its signed x- headers, security token included (the whole canonical request would be cut by the
        # message's length limit before it, by how long the path and the other headers happen to be).
        echoed = "|".join(line for line in canonical.split("\n") if line.startswith("x-"))
        body = {
            "error_code": "APIG.0301",
            "error_msg": "Incorrect IAM authentication information: verify aksk signature fail, " + echoed,
            "request_id": "apig-echo-1",
        }
        return ApiResponse.build(401, json.dumps(body).encode(), {"X-Request-Id": "apig-echo-1"})

    monkeypatch.setattr(hook, "_send", gateway)
    with pytest.raises(AomAuthenticationError) as info:
        hook.execute_workflow("wf-success")
    # (Not "x-security-token": on Airflow 2 the masker also hides short secrets other tests registered, "tok".)
    assert "|x-sdk-date:" in str(info.value), "the echo is in the message"
    assert SECURITY_TOKEN in masked
    assert SECURITY_TOKEN not in str(info.value)


def test_config_parsing_masks_every_secret_field(masked: list[str]) -> None:
    """Straight from the connection fields, before any request: SK, security token, password, token."""
    for mode, login, password, extra in [
        ("aksk", "AK", SECRET_KEY, {"security_token": SECURITY_TOKEN}),
        ("password", "user", IAM_PASSWORD, {"domain_name": "acct"}),
        ("token", None, STATIC_TOKEN, {}),
    ]:
        config = AomConnectionConfig.from_parts(
            conn_id="c",
            host=None,
            login=login,
            password=password,
            extra={"auth_type": mode, "region": "cn-north-4", "project_id": PROJECT, **extra},
        )
        assert_no_secret(repr(config) + str(config), ALL_SECRETS)
    assert {SECRET_KEY, SECURITY_TOKEN, IAM_PASSWORD, STATIC_TOKEN} <= set(masked)


async def test_transport_debug_logs_hold_no_iam_token(
    secret_connection: Any, vault: AomEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_provider_aom.hooks.aom import AomAsyncHook

    secret_connection("password")
    execution_id = AomHook().execute_workflow("wf-long")
    TOKEN_CACHE.clear()  # the trigger's hook fetches a token of its own
    before = issued_tokens(vault)
    caplog.set_level(logging.DEBUG)
    detail = await AomAsyncHook().get_execution("wf-long", execution_id)
    assert detail["execution_id"] == execution_id
    [token] = issued_tokens(vault) - before
    assert_no_secret(caplog.text, {token, IAM_PASSWORD})
