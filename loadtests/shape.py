"""Step load for Locust: `python -m loadtests.run --step` adds this file to -f (`-f locustfile.py,shape.py`).

Users grow by --step-users every --step-seconds up to --users, spawned at --spawn-rate; the test ends at --run-time.
"""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape, events

from loadtests.steps import users_at


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument("--step-users", type=int, default=1, help="users added at each step")
    parser.add_argument("--step-seconds", type=float, default=15.0, help="length of each step")


class StepLoadShape(LoadTestShape):
    use_common_options = True  # --users, --spawn-rate and --run-time keep their meaning

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        elapsed_s = self.get_run_time()
        if options is None or elapsed_s >= options.run_time:
            return None
        users = users_at(
            elapsed_s, step_users=options.step_users, step_s=options.step_seconds, max_users=options.num_users
        )
        return users, options.spawn_rate
