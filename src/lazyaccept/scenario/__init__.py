"""The untimed model of a guest: a resolved configuration, building the record of what happened,
the sanitizer that checks it, and the real-format artefacts it writes."""
