"""A seeded, reproducible randomized fault campaign against hook-level submits.

Each trial draws an auth mode, a fault class (delay past the timeout, drop before/after,
429 with Retry-After, 500/502/503/504, malformed, truncated, expired token), a target
(the execute POST, the execution-list GET used to reconcile, the IAM token POST, or any
request) and a count, sometimes a second fault, then submits one execution of a
workflow of its own and checks the duplicate-start invariants:

* at most one execution exists for the trial's workflow (never two from one submit);
* a returned id is that execution;
* every execution that existed when the hook answered is its return value or named in its
  error, unless the error says the execution list could not be read;
* a POST is sent again only after an answer that proves nothing started (429, 401), or after
  a 503 once the execution list, read after it, was answered (and showed nothing began);
* after any other ambiguous answer, no further POST;
* every error is one of the provider's typed errors.

The plan is drawn from ``SEED`` before anything runs (override with the environment
variable ``AOM_FAULT_CAMPAIGN_SEED``), so a failing trial can be replayed. The summary
table is printed (visible with ``pytest -s``).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from airflow_provider_aom.auth.tokens import TOKEN_CACHE
from airflow_provider_aom.emulator import AomEmulator, EmulatorConfig, WorkflowSpec
from airflow_provider_aom.exceptions import AomAmbiguousSubmitError, AomError
from airflow_provider_aom.hooks.aom import AomHook
from tests.conftest import connection, reset_client_state
from tests.faults import executions_path, fault_classes, logged, settle

SEED = int(os.environ.get("AOM_FAULT_CAMPAIGN_SEED", "20261127"))
TRIALS = 240
TIMEOUT = 0.3
DELAY = 0.6
RETRY_AFTER = 0.02
EXTRA = {
    "timeout": TIMEOUT,
    "retry_attempts": 3,
    "retry_max_wait": 0.02,
    "retry_total": 5,
    # Each trial has a workflow of its own; keep the adoption window short anyway.
    "submit_clock_skew": 2,
}

FAULT_CLASSES = fault_classes(DELAY, RETRY_AFTER)
TARGETS: dict[str, tuple[str | None, str]] = {
    "submit": ("POST", r"/executions$"),
    "list": ("GET", r"/executions$"),
    "iam": ("POST", r"^/v3/auth/tokens$"),
    "any": (None, ""),
}
OUTCOMES = ("returned", "retried", "adopted", "resent", "ambiguous-error", "other-error")


@dataclass(frozen=True)
class PlannedFault:
    fault_class: str
    target: str
    count: int

    def inject(self, emulator: AomEmulator) -> None:
        kind, options = FAULT_CLASSES[self.fault_class]
        method, path = TARGETS[self.target]
        emulator.state.add_fault(kind, method=method, path=path, count=self.count, **options)


@dataclass(frozen=True)
class Trial:
    number: int
    mode: str
    faults: tuple[PlannedFault, ...]

    @property
    def workflow_id(self) -> str:
        return f"wf-c{self.number:03d}"

    @property
    def delays(self) -> int:
        return sum(f.count for f in self.faults if f.fault_class == "delay")


@dataclass
class TrialResult:
    trial: Trial
    outcome: str
    late: bool
    #: The error says the execution list could not be read: no id could be named.
    list_unreadable: bool
    seconds: float
    violations: list[str] = field(default_factory=list)


def plan(seed: int, trials: int) -> list[Trial]:
    """The whole campaign, drawn before anything runs."""
    rng = random.Random(seed)
    planned = []
    for number in range(trials):
        mode = rng.choice(["aksk", "password"])
        targets = ["submit"] * 6 + ["list"] * 2 + ["any"] + (["iam"] if mode == "password" else [])
        faults = [PlannedFault(rng.choice(list(FAULT_CLASSES)), rng.choice(targets), rng.choice([1, 1, 2, 3]))]
        if rng.random() < 0.35:
            second = ["list", "any"] + (["iam"] if mode == "password" else [])
            faults.append(PlannedFault(rng.choice(list(FAULT_CLASSES)), rng.choice(second), rng.choice([1, 2])))
        planned.append(Trial(number, mode, tuple(faults)))
    return planned


def run_trial(emulator: AomEmulator, trial: Trial) -> TrialResult:
    state = emulator.state
    reset_client_state(emulator)
    for fault in trial.faults:
        fault.inject(emulator)
    hook = AomHook(aom_conn_id=f"aom_campaign_{trial.mode}")
    began = time.monotonic()
    result: str | None = None
    error: AomError | None = None
    try:
        result = hook.execute_workflow(trial.workflow_id)
    except AomError as exc:  # anything else is untyped and fails the campaign at once
        error = exc
    seconds = time.monotonic() - began

    def created() -> list[str]:
        return [e["execution_id"] for e in state.executions() if e["workflow_id"] == trial.workflow_id]

    visible = created()
    settle(state, trial.delays)
    final = created()
    log = state.requests()
    path = executions_path(trial.workflow_id)
    posts = logged(state, "POST", path)
    lists = logged(state, "GET", path)
    message = str(error) if error is not None else ""
    violations: list[str] = []

    if len(final) > 1:
        violations.append(f"{len(final)} executions from one submit")
    if result is not None and final != [result]:
        violations.append(f"returned {result} but the workflow has {final}")
    for execution_id in visible:
        if execution_id != result and execution_id not in message and "could not be read" not in message:
            violations.append(f"execution {execution_id} neither returned nor named in {message!r}")
    for post, following in itertools.pairwise(posts):
        between = log[log.index(post) + 1 : log.index(following)]
        if post["status"] == 503:
            # Re-sent after a 503 only once a list, answered, came in between (it showed nothing began:
            # the one-execution checks above hold the rest).
            if not any(r in lists and r["status"] == 200 for r in between):
                violations.append("POST re-sent after a 503 without reading the list first")
        elif post["status"] not in (401, 429):
            violations.append(f"POST re-sent after an answer {post['status']} (fault {post['fault']})")
        elif any(r in lists for r in between):
            violations.append("POST sent after reconciliation began")
    # Created after the hook answered: the server finished a POST the client had given up on.
    late = bool(set(final) - set(visible))
    if seconds > 5:
        violations.append(f"took {seconds:.1f} s")

    if isinstance(error, AomAmbiguousSubmitError):
        outcome = "ambiguous-error"
    elif error is not None:
        outcome = "other-error"
    elif lists and len(posts) > 1 and posts[-2]["status"] == 503 and result is not None:
        outcome = "resent"
    elif lists:
        outcome = "adopted"
    elif len(posts) > 1:
        outcome = "retried"
    else:
        outcome = "returned"
    return TrialResult(trial, outcome, late, "could not be read" in message, seconds, violations)


def summary(results: list[TrialResult], seed: int) -> str:
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    for r in results:
        row = rows[r.trial.faults[0].fault_class]
        row["trials"] += 1
        row[r.outcome] += 1
        row["late-exec"] += r.late
    columns = ["trials", *OUTCOMES, "late-exec"]
    total: Counter[str] = Counter()
    for row in rows.values():
        total.update(row)
    lines = [
        f"Fault campaign: seed {seed}, {len(results)} trials, {sum(r.seconds for r in results):.1f} s in the hook "
        "(rows: first fault of the trial; late-exec: created after the hook answered, must stay 0)",
        "| fault class  | " + " | ".join(columns) + " |",
        "|--------------|" + "|".join("-" * (len(c) + 2) for c in columns) + "|",
    ]
    for name, row in [*((n, rows[n]) for n in FAULT_CLASSES if n in rows), ("total", total)]:
        lines.append(f"| {name:<12} | " + " | ".join(str(row[c]).rjust(len(c)) for c in columns) + " |")
    return "\n".join(lines)


def run_campaign(trials: list[Trial]) -> list[TrialResult]:
    """Run ``trials`` in order against an emulator of their own."""
    workflows = [WorkflowSpec(id=t.workflow_id, name=t.workflow_id, outcome="success", duration=600) for t in trials]
    with AomEmulator(EmulatorConfig(workflows=workflows)) as emulator, pytest.MonkeyPatch.context() as patch:
        for mode in ("aksk", "password"):
            conn = connection(emulator, mode, extra=dict(EXTRA))
            patch.setenv(f"AIRFLOW_CONN_AOM_CAMPAIGN_{mode.upper()}", json.dumps(conn))
        try:
            return [run_trial(emulator, trial) for trial in trials]
        finally:
            TOKEN_CACHE.clear()


@pytest.fixture(scope="module")
def campaign() -> Iterator[list[TrialResult]]:
    results = run_campaign(plan(SEED, TRIALS))
    print("\n" + summary(results, SEED))
    yield results


def test_campaign_invariants(campaign: list[TrialResult]) -> None:
    assert len(campaign) >= 200
    failures = [
        f"trial {r.trial.number} ({r.trial.mode}, {r.trial.faults}): {'; '.join(r.violations)}"
        for r in campaign
        if r.violations
    ]
    assert not failures, f"seed {SEED}:\n" + "\n".join(failures[:20])
    outcomes = Counter(r.outcome for r in campaign)
    # The campaign really exercised every path, not just the happy one.
    assert all(outcomes[o] > 0 for o in OUTCOMES), outcomes
    assert {r.trial.faults[0].fault_class for r in campaign} == set(FAULT_CLASSES)


def test_a_trial_replayed_from_the_seed_ends_the_same_way(campaign: list[TrialResult]) -> None:
    """What the seed promises: a failing trial can be run again alone and behaves as it did in the campaign.

    Trials with a ``delay`` fault are left out: how a request held past the client's timeout races the
    server is timing, not plan.
    """
    replayed = [r for r in campaign if all(f.fault_class != "delay" for f in r.trial.faults)][::8]
    assert len(replayed) >= 12
    numbers = {r.trial.number for r in replayed}
    again = run_campaign([t for t in plan(SEED, TRIALS) if t.number in numbers])
    assert [(r.trial, r.outcome, r.violations) for r in again] == [(r.trial, r.outcome, r.violations) for r in replayed]


def test_campaign_has_no_late_executions(campaign: list[TrialResult]) -> None:
    # When the list itself could not be read, nothing can be named: that is not this gap.
    late = [r.trial.number for r in campaign if r.late and not r.list_unreadable]
    assert not late, f"trials with an execution created after the hook answered: {late}"
