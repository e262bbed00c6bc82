"""The central collector: ingest -> identity -> dedup -> classify -> store (+chain) -> forwarders."""
