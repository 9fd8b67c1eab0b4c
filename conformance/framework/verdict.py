"""The run's verdict: CONFORMANT only when every required check that applies to this cluster ran and passed.

Inputs, all plain data (no pytest, no cluster):
- the cluster's capabilities (node groups, what is unavailable where);
- the checks the run collected before any selection (`Check`: test id, behaviour, node group), and
  whether each was selected; the table classifies each on this cluster;
- what each test reported (`Result`).

Outcome, per scope (the apiserver's behaviours; each node group's):
- NOT CONFORMANT: a required check failed or errored (a crashed worker included), a known defect showed,
  or image volumes are unavailable (on evidence: the apiserver drops them, a kubelet gate, the probe);
- INCOMPLETE: no failure, but a required check did not run (deselected, skipped, blocked by the
  registry or the cluster, never reported) or a required behaviour has no check in the run at all;
- CONFORMANT: neither.
The run is NOT CONFORMANT if any scope is; else INCOMPLETE if any is; else CONFORMANT. Known defects
of optional behaviours and failures of optional or informational ones are reported beside it.
Exit statuses: 0 CONFORMANT (or NOT CONFORMANT by required known defects alone, with
`--accept-known-defects`), 1 NOT CONFORMANT, `EXIT_INCOMPLETE` INCOMPLETE.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from conformance.framework.capabilities import Capabilities
from conformance.framework.expectations import TABLE, Level, NoRow, Rule, decided_by, lookup_on

EXIT_CONFORMANT = 0
EXIT_NOT_CONFORMANT = 1
EXIT_INCOMPLETE = 6  # beside pytest's own 0-5: "the run did not check everything required"
KNOWN_DEFECT = "known-defect"
BLOCKED = "blocked"
NOT_RUN = "not-run"
CLUSTER_SCOPE = "apiserver"


@dataclass(frozen=True)
class Check:
    """One conformance test as collected, before -k/-m/--rerun-failed selection."""

    nodeid: str
    behaviour: str
    group: str | None  # the node group a kubelet-decided check runs on; None: the apiserver's (or the only group)
    selected: bool = True


@dataclass
class Result:
    """What one test reported (the controller's view of its reports)."""

    nodeid: str
    outcome: str  # passed / failed / error / known-defect / skipped / blocked
    message: str = ""
    level: str = ""  # as the worker classified it (empty for a crashed worker's test)
    behaviour: str = ""
    group: str = ""
    source: str = ""
    hint: str = ""
    defect_of: str = ""
    defect_not_seen: str = ""  # a known defect's test passed: the table may be stale here
    observed: dict[str, str] = field(default_factory=dict)
    pods: list[float | None] = field(default_factory=list)
    from_run: str = ""  # merged from an earlier run's report (--rerun-failed)
    seconds: float = 0.0  # the test body's (pytest's call phase); its fixtures' waits are not in it
    span: tuple[float, float] = (0.0, 0.0)  # wall clock (epoch seconds): its setup's start, its teardown's end
    disruptive: bool = False  # restarted a node's component (run last, alone: the benchmark counts it apart)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Classified:
    check: Check
    level: Level
    defect_of: Level | None

    @property
    def required(self) -> bool:
        return self.level is Level.REQUIRED or (self.level is Level.KNOWN_DEFECT and self.defect_of is Level.REQUIRED)

    @property
    def optional(self) -> bool:
        return self.level is Level.OPTIONAL or (self.level is Level.KNOWN_DEFECT and self.defect_of is Level.OPTIONAL)


def classify(check: Check, caps: Capabilities) -> Classified | None:
    """The table's level for `check` on this cluster; None when it has no row (image volumes unavailable)."""
    try:
        expectation = lookup_on(check.behaviour, caps, check.group)
    except NoRow:
        return None
    return Classified(check, expectation.level, expectation.defect_of)


def required_behaviours(caps: Capabilities, table: Sequence[Rule] = TABLE) -> set[tuple[str, str | None]]:
    """(behaviour, node group) pairs that must be checked on this cluster: required (or a required
    behaviour's known defect) by the table, where image volumes are available."""
    if caps.cluster_unavailable_reason() is not None:
        return set()
    unavailable = caps.unavailable_groups()
    scopes: list[str | None] = [g.id for g in caps.groups] if caps.multi_group else [None]
    wanted = set()
    for behaviour in sorted({rule.behaviour for rule in table}):
        for group in scopes if decided_by(behaviour) == "kubelet" else [None]:
            if group in unavailable:
                continue
            classified = classify(Check("", behaviour, group), caps)
            if classified is not None and classified.required:
                wanted.add((behaviour, group))
    return wanted


@dataclass
class ScopeVerdict:
    scope: str  # CLUSTER_SCOPE or a node group id
    label: str  # how a reader knows the scope: "apiserver v1.36.3", "containerd 2.3.7 (kubelet …; node-a)"
    unavailable: str | None = None
    failed: list[str] = field(default_factory=list)  # nodeids
    known_defects: list[str] = field(default_factory=list)
    not_run: dict[str, str] = field(default_factory=dict)  # nodeid or behaviour → why

    @property
    def not_conformant(self) -> bool:
        return bool(self.unavailable or self.failed or self.known_defects)

    def problems(self) -> str:
        if self.unavailable:
            return f"image volumes unavailable: {self.unavailable}"
        parts = [_count(len(self.failed), "required check") + " failed"] if self.failed else []
        if self.known_defects:
            parts.append(_count(len(self.known_defects), "known defect"))
        return ", ".join(parts)


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


@dataclass
class RunVerdict:
    """The one line a reader looks for, and everything behind it."""

    state: str  # "CONFORMANT" / "NOT CONFORMANT" / "INCOMPLETE"
    scopes: list[ScopeVerdict]
    multi_group: bool
    required_total: int
    optional_failed: list[str] = field(default_factory=list)
    optional_known_defects: list[str] = field(default_factory=list)
    informational_failed: list[str] = field(default_factory=list)
    unclassified_failed: list[str] = field(default_factory=list)  # failures outside the table (not conformance tests)
    defects_not_seen: list[str] = field(default_factory=list)
    partial_selection: str = ""  # the command line narrowed the suite itself (a file, a test id)

    @property
    def conformant(self) -> bool:
        return self.state == "CONFORMANT"

    @property
    def not_run(self) -> dict[str, str]:
        return {key: why for scope in self.scopes for key, why in scope.not_run.items()}

    @property
    def known_defects_only(self) -> bool:
        """NOT CONFORMANT only because of required known defects (what --accept-known-defects accepts)."""
        return self.state == "NOT CONFORMANT" and not any(s.unavailable or s.failed for s in self.scopes)

    def exit_status(self, accept_known_defects: bool = False) -> int:
        if self.unclassified_failed:
            return EXIT_NOT_CONFORMANT
        if self.state == "CONFORMANT":
            return EXIT_CONFORMANT
        if self.state == "INCOMPLETE":
            return EXIT_INCOMPLETE
        if accept_known_defects and self.known_defects_only and not self.not_run and not self.partial_selection:
            return EXIT_CONFORMANT
        return EXIT_NOT_CONFORMANT

    def line(self) -> str:
        if self.state == "NOT CONFORMANT":
            head = f"NOT CONFORMANT{self._where()}"
            if self.not_run or self.partial_selection:
                head += f"; and INCOMPLETE: {self._incomplete()}"
        elif self.state == "INCOMPLETE":
            head = f"INCOMPLETE: {self._incomplete()}"
        else:
            head = f"CONFORMANT: all {_count(self.required_total, 'required check')} passed"
        extras = []
        if self.optional_failed:
            extras.append(_count(len(self.optional_failed), "optional check") + " failed")
        if self.optional_known_defects:
            extras.append(_count(len(self.optional_known_defects), "known defect") + " in optional behaviours")
        if self.informational_failed:
            extras.append(_count(len(self.informational_failed), "informational check") + " could not observe")
        if self.defects_not_seen:
            extras.append(_count(len(self.defects_not_seen), "known defect") + " did not show (table stale?)")
        if self.unclassified_failed:
            extras.append(_count(len(self.unclassified_failed), "test") + " outside the conformance suite failed")
        return head + (f"; {'; '.join(extras)}" if extras else "")

    def _where(self) -> str:
        """': 2 required checks failed, 1 known defect', or per node group when the nodes differ."""
        bad = [scope for scope in self.scopes if scope.not_conformant]
        if not self.multi_group:
            if unavailable := next((s.unavailable for s in bad if s.unavailable), None):
                return f": image volumes unavailable: {unavailable}"
            merged = ScopeVerdict("", "", failed=[n for s in bad for n in s.failed],
                                  known_defects=[n for s in bad for n in s.known_defects])  # fmt: skip
            return f": {merged.problems()}"
        groups = [s for s in bad if s.scope != CLUSTER_SCOPE]
        total = sum(1 for s in self.scopes if s.scope != CLUSTER_SCOPE)
        parts = [f"{s.label}: {s.problems()}" for s in bad]
        return (f" on {len(groups)} of {total} node groups" if groups else "") + f": {'; '.join(parts)}"

    def _incomplete(self) -> str:
        reasons = Counter(why.split(":", 1)[0] for why in self.not_run.values())
        detail = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
        text = f"{_count(len(self.not_run), 'required check')} did not run" + (f" ({detail})" if detail else "")
        if self.partial_selection:
            text += f"; {self.partial_selection}"
        example = next(iter(self.not_run.values()), "")
        if example and ":" in example:
            text += f"; e.g. {example}"
        return text


def run_verdict(
    caps: Capabilities,
    checks: Iterable[Check],
    results: Mapping[str, Result],
    *,
    partial_selection: str = "",
) -> RunVerdict:
    """The verdict of a run on `caps` from the collected checks and the tests' results."""
    checks = list(checks)
    groups = {g.id: g for g in caps.groups}
    scopes: dict[str, ScopeVerdict] = {CLUSTER_SCOPE: ScopeVerdict(CLUSTER_SCOPE, f"apiserver {caps.server_version}")}
    for node_group in caps.groups:
        scopes[node_group.id] = ScopeVerdict(node_group.id, node_group.label())

    def scope_of(group: str | None) -> ScopeVerdict:
        if group is not None and group in scopes:
            return scopes[group]
        if not caps.multi_group and caps.groups:
            return scopes[caps.groups[0].id]
        return scopes[CLUSTER_SCOPE]

    verdict = RunVerdict("CONFORMANT", [], caps.multi_group, 0, partial_selection=partial_selection)
    cluster_reason = caps.cluster_unavailable_reason()
    if cluster_reason is not None:
        scopes[CLUSTER_SCOPE].unavailable = cluster_reason
    for group_id, reason in caps.unavailable_groups().items():
        scopes[group_id].unavailable = reason

    classified_ids = set()
    covered: set[tuple[str, str | None]] = set()
    for check in checks:
        result = results.get(check.nodeid)
        classified = classify(check, caps) if cluster_reason is None else None
        if classified is None:
            continue
        classified_ids.add(check.nodeid)
        scope = scope_of(check.group if decided_by(check.behaviour) == "kubelet" else None)
        if decided_by(check.behaviour) == "apiserver":
            scope = scopes[CLUSTER_SCOPE]
        outcome = result.outcome if result is not None else NOT_RUN
        if result is not None and result.defect_not_seen:
            verdict.defects_not_seen.append(check.nodeid)
        if classified.required:
            if scope.unavailable:
                continue  # the group's verdict is already given; its checks were skipped with it
            verdict.required_total += 1
            key_group = check.group if decided_by(check.behaviour) == "kubelet" and caps.multi_group else None
            if outcome in ("passed", KNOWN_DEFECT, "failed", "error"):
                covered.add((check.behaviour, key_group))
            if outcome in ("failed", "error"):
                scope.failed.append(check.nodeid)
            elif outcome == KNOWN_DEFECT:
                scope.known_defects.append(check.nodeid)
            elif outcome == BLOCKED:
                scope.not_run[check.nodeid] = f"blocked: {result.message if result else ''}"
            elif outcome == "skipped":
                scope.not_run[check.nodeid] = f"skipped: {result.message if result else ''}"
            elif outcome == NOT_RUN:
                scope.not_run[check.nodeid] = "deselected" if not check.selected else "never reported"
        elif classified.optional:
            if outcome in ("failed", "error"):
                verdict.optional_failed.append(check.nodeid)
            elif outcome == KNOWN_DEFECT:
                verdict.optional_known_defects.append(check.nodeid)
        elif classified.level is Level.INFORMATIONAL and outcome in ("failed", "error"):
            verdict.informational_failed.append(check.nodeid)
    verdict.unclassified_failed = sorted(
        nodeid for nodeid, r in results.items() if nodeid not in classified_ids and r.outcome in ("failed", "error")
        and not r.level  # a conformance test of an unavailable cluster reports its level; others have none
    )  # fmt: skip
    # A required behaviour with no check that ran at all (the command line left its file out).
    for behaviour, where in sorted(required_behaviours(caps) - covered, key=str):
        scope = scopes[where] if where is not None else scopes[CLUSTER_SCOPE]
        if where is None and decided_by(behaviour) == "kubelet" and caps.groups:
            scope = scopes[caps.groups[0].id]
        already = any(
            c.behaviour == behaviour and c.nodeid in scope.not_run for c in checks if c.group in (where, None)
        )
        if not already:
            scope.not_run[f"behaviour {behaviour}"] = "not in this run"
    verdict.scopes = [scopes[CLUSTER_SCOPE], *(scopes[g] for g in sorted(groups))]
    if any(s.not_conformant for s in verdict.scopes):
        verdict.state = "NOT CONFORMANT"
    elif verdict.not_run or partial_selection:
        verdict.state = "INCOMPLETE"
    return verdict
