"""Leftovers of dead runs are found by liveness (a lease that stopped being renewed), never by age alone;
a live run's namespaces are never touched, whatever the clocks say."""

from datetime import UTC, datetime, timedelta

from conformance.framework import namespaces
from conformance.framework.namespaces import RUN_LABEL, RunSweeper, shared_namespace


def stamp(seconds_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeKube:
    def __init__(self) -> None:
        self.namespaces: dict[str, dict] = {}
        self.leases: dict[str, dict] = {}
        self.deleted: list[str] = []

    def add_run(self, run: str, age: float, renewed: float | None) -> None:
        for suffix in ("shared-pods", "test-a"):
            name = f"ivc-{run}-{suffix}"
            self.namespaces[name] = {
                "metadata": {"name": name, "labels": {RUN_LABEL: run}, "creationTimestamp": stamp(age)},
                "status": {"phase": "Active"},
            }
        if renewed is not None:
            self.leases[shared_namespace(run)] = {
                "spec": {"renewTime": stamp(renewed), "leaseDurationSeconds": namespaces.LEASE_SECONDS}
            }

    def list_namespaces(self, selector: str) -> list[dict]:
        return list(self.namespaces.values())

    def read_lease(self, namespace: str, name: str) -> dict | None:
        return self.leases.get(namespace)

    def delete_namespace(self, name: str) -> None:
        self.deleted.append(name)


def test_a_run_without_a_lease_is_dead_once_past_the_grace():
    kube = FakeKube()
    kube.add_run("old", age=namespaces.NO_LEASE_GRACE_SECONDS + 5, renewed=None)
    kube.add_run("new", age=5, renewed=None)  # its lease is being created right now
    assert RunSweeper(kube, "mine").sweep() == ["old"]
    assert sorted(kube.deleted) == ["ivc-old-shared-pods", "ivc-old-test-a"]


def test_a_lease_long_unrenewed_is_dead_at_once():
    kube = FakeKube()
    kube.add_run("killed", age=7200, renewed=namespaces.LEASE_SECONDS + namespaces.CLOCK_SKEW_SECONDS + 5)
    assert RunSweeper(kube, "mine").sweep() == ["killed"]


def test_a_recent_lease_is_dead_only_after_it_stayed_unchanged_for_its_duration(monkeypatch):
    kube = FakeKube()
    kube.add_run("other", age=30, renewed=20)
    clock = [1000.0]
    monkeypatch.setattr(namespaces.time, "monotonic", lambda: clock[0])
    sweeper = RunSweeper(kube, "mine")
    assert sweeper.sweep() == []  # first seen: watched, not judged
    clock[0] += 30
    assert sweeper.sweep() == []
    kube.leases[shared_namespace("other")]["spec"]["renewTime"] = stamp(0)  # renewed: alive
    clock[0] += 29
    assert sweeper.sweep() == []
    clock[0] += 31  # unchanged for longer than its duration
    assert sweeper.sweep() == ["other"]


def test_the_own_run_is_never_swept():
    kube = FakeKube()
    kube.add_run("mine", age=99999, renewed=None)
    assert RunSweeper(kube, "mine").sweep() == [] and kube.deleted == []
