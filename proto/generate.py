"""Generate the Python gRPC stubs into common/pb/ (run by `make proto`).

grpcio-tools writes absolute imports (`from fleetlog.v1 import fleetlog_pb2`); the stubs live in
the `fleetlog.common.pb` package, so those imports are rewritten. The generated files are committed so a
plain `pip install` works without grpcio-tools; tests/unit/test_proto_stubs.py fails when they
are out of date with the .proto.
"""

from __future__ import annotations

import pathlib
import re
import sys

from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"


def generate(out_dir: pathlib.Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    rc = protoc.main(
        ["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={out_dir}",
         f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", *protos]
    )
    if rc != 0:
        sys.exit(f"protoc failed with exit code {rc}")
    for path in out_dir.rglob("*.py*"):
        text = path.read_text()
        fixed = re.sub(r"^from fleetlog\.v1 import", "from fleetlog.common.pb.fleetlog.v1 import", text, flags=re.MULTILINE)
        if fixed != text:
            path.write_text(fixed)
    for pkg in [out_dir, *[p for p in out_dir.rglob("*") if p.is_dir() and p.name != "__pycache__"]]:
        (pkg / "__init__.py").touch()


if __name__ == "__main__":
    generate(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "common" / "pb")
