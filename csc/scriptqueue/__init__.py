"""The ScriptQueue: a pure queue model, a store, the script runner and the service."""
