"""``lazyaccept check``: the historic bugs of Linux's unaccepted-memory support re-introduced as
mutants, hostile hosts, and explored interleavings of ``accept_memory()``, each scenario run
against the model with the detectors that should catch it (docs/check-catalogue.md)."""
