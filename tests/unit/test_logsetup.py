"""The daemons' own log file: daily rotation keeps log_rotate_max old files."""

import logging

from fleetlog.common.levels import Level
from fleetlog.common.logsetup import setup_logging


def test_daily_rotation_keeps_at_most_rotate_max_files(tmp_path):
    path = tmp_path / "fleetlog.log"
    setup_logging(Level.INFO, str(path), "text", rotate_daily=True, rotate_max=2)
    root = logging.getLogger()
    try:
        handler = root.handlers[0]
        first_midnight = handler.rolloverAt
        for day in range(4):
            logging.getLogger("fleetlog.test").info("day %d", day)
            handler.rolloverAt = first_midnight + day * 86400   # the file is named for the day it ends
            handler.doRollover()      # what each midnight (UTC) does
        logging.getLogger("fleetlog.test").info("today")
        handler.flush()
        rotated = sorted(p.name for p in tmp_path.iterdir() if p.name != "fleetlog.log")
        assert len(rotated) == 2 and all(name.startswith("fleetlog.log.") for name in rotated)
        assert path.read_text().endswith("INFO fleetlog.test: today\n")
        logging.getLogger("fleetlog.test").debug("hidden")
        handler.flush()
        assert "hidden" not in path.read_text()
    finally:
        setup_logging(Level.INFO)


def test_without_a_file_logs_go_to_stderr(capsys):
    setup_logging(Level.WARNING)
    logging.getLogger("fleetlog.test").warning("to the journal")
    logging.getLogger("fleetlog.test").info("not shown")
    err = capsys.readouterr().err
    assert "WARNING fleetlog.test: to the journal" in err and "not shown" not in err
