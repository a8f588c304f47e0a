"""obsq.scripts — BaseScript, the script runner and the script library (later issues)."""
