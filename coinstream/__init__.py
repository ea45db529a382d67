"""The operator's command line, `coinstream <command>`: everything a person runs beside
the workers (start the collector, see its health, watch prices, create topics, check a
configuration). The workers themselves are `python -m workers.<exchange>`, on the
runtime in shared/."""
