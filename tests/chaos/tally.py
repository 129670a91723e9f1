"""The chaos suite's running totals, printed by conftest.py when the session ends."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class ChaosTally:
    """Counters every chaos test adds to; lost, corrupted and duplicated must end at zero."""

    scenarios: int = 0
    server_kills: int = 0
    agent_kills: int = 0
    network_faults: int = 0
    disk_faults: int = 0
    commit_races: int = 0  # a stream ended mid-commit while another waited for its content
    hostile_files: int = 0
    hostile_messages: int = 0
    identity_attacks: int = 0
    fuzz_inputs: int = 0
    photos_verified: int = 0
    objects_rehashed: int = 0  # acknowledged objects re-hashed at the end of a scenario
    objects_mismatched: int = 0  # of those, how many did not hash to their name
    photos_lost: int = 0
    photos_corrupted: int = 0
    photos_duplicated: int = 0
    worker_kills: int = 0  # worker agents SIGKILLed with jobs running
    jobs_verified: int = 0  # jobs whose outputs were checked at the end of a scenario
    job_results_lost: int = 0  # a job acknowledged COMPLETED whose output is missing/damaged
    job_results_duplicated: int = 0  # a job with outputs recorded by two attempts

    def lines(self) -> list[str]:
        return [f"{f.name:>18}: {getattr(self, f.name)}" for f in fields(self)]


TALLY = ChaosTally()
"""One per pytest session: the suite is one process, and the summary is of the whole run."""
