"""The filters every client offers (contract §1 "Filters"): flag, Filters field, metavar, help. The
CLI's options and the console's API document are built from this one table, so they cannot differ."""

FILTER_FLAGS = (
    ("--since", "since", "T", "RFC 3339, a date (2025-12-01) or relative (15m, 2h, 7d)"),
    ("--until", "until", "T", "RFC 3339, a date or relative"),
    ("--date", "date", "PREFIX", "time prefix: 2025-12-01, 2025-12, '2025-12-01 14:3'"),
    ("--min-level", "min_level", "L", "this level and everything more severe"),
    ("--level", "level", "L1,L2", "exactly these levels"),
    ("--request-id", "request_id", "X", "exact; X* = starts with X"),
    ("--user", "user", "U", "exact, u* wildcard, or a comma list"),
    ("--host", "host", "H", "origin node name or IP; wildcard; comma list"),
    ("--message", "message", "M", 'keywords, all must occur; \'"exact phrase"\' in double quotes'),
    ("--message-regex", "message_regex", "R", "regular expression on the message"),
    ("--log-type", "log_type", "T", "exact, wildcard, comma list"),
    ("--source", "source", "S", "exact, wildcard, comma list"),
    ("--namespace", "namespace", "N", "exact, wildcard, comma list"),
    ("--app", "app", "A", "exact, wildcard, comma list"),
    ("--action", "action", "A", "exact, wildcard, comma list"),
    ("--where", "where", "'f=pat; ...'", "audit-search syntax: % any run of characters, ; separates"),
)
