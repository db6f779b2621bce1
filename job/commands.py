"""The job's commands, a closed set: what each is for and what it may do. Compared by identity
(`command is Command.RUN`), never as strings."""

from __future__ import annotations

from job.values import Worded


class Command(Worded):
    RUN = "run", "one batch, then exit (or run on EXT2INT_SCHEDULE when it is set)"
    PLAN = "plan", "what `run` would do, changing nothing"
    LIBRARIES = "libraries", "the libraries this API key can see, and whether it may migrate them"
    SERVE = "serve", "stay up, run on EXT2INT_SCHEDULE, serve /metrics"
    VERIFY = "verify", "prove again every moved asset's bytes and curation, changing nothing"
    UNDO = "undo", "take moves back while Immich's trash holds their external assets (undo-plan: preview it)"
    UNDO_PLAN = "undo-plan", ""

    def __str__(self) -> str:  # in messages and the report: its name as typed
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def read_only(self) -> bool:
        """The transport refuses every request that would change anything."""
        return self in (Command.PLAN, Command.VERIFY, Command.UNDO_PLAN, Command.LIBRARIES)

    @property
    def audit(self) -> bool:
        """About moves already made (their metrics count apart from the runs')."""
        return self in (Command.VERIFY, Command.UNDO, Command.UNDO_PLAN)

    @property
    def acts_on_assets(self) -> bool:
        """Reads or changes assets: the key's permissions are checked for it before anything else."""
        return self not in (Command.LIBRARIES, Command.SERVE)
