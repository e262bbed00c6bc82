"""The per-node agent: sources -> parse -> filter -> spool -> shipper."""
