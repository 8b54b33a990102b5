"""The base layer: sizes, [start, end) sets, the event record, one error family, safe file I/O, fixed choices."""
