"""What `fleetlog export`/`bundle` and the console's downloads share, so both write the same bytes
for the same events: the file writers (writers.py), the columns and cell text (columns.py) and the
support bundle's parts (bundle.py). XLSX and PDF need the `export` extra; CSV and JSON lines need
nothing more."""
