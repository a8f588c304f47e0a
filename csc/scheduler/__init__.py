"""The Scheduler (Scheduler:2): Rubin's addBlock, and the schedule it runs by itself (schedule.yaml)."""
