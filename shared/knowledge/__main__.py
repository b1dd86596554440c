"""`python -m shared.knowledge`: ingest, list and delete an agent's knowledge documents.

Reads the same settings as the app (DATABASE_URL, BLOB_CONNECTION_STRING, AZURE_SEARCH_*, ...). Works on
one tenant's agents: `--tenant`, the demo tenant unless told.
Exit status: 0 done, 1 refused input (unknown agent, missing file, unsupported type, over a bound),
2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from shared.errors import ApiError
from shared.knowledge.library import KnowledgeLibrary
from shared.knowledge.loading import check_size, content_type_of
from shared.services import services
from shared.tenancy import DEMO_TENANT, TENANT_ID, tenant_scope


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.knowledge", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tenant", default=DEMO_TENANT, help=f"whose agent (default {DEMO_TENANT}, the agent files' tenant)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ingest = commands.add_parser("ingest", help="add or replace documents (.txt, .md, .html, .pdf)")
    ingest.add_argument("agent")
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    delete = commands.add_parser("delete", help="remove an ingested document and its chunks")
    delete.add_argument("agent")
    delete.add_argument("document", help="the document id `list` shows (e.g. menu-pdf)")
    listing = commands.add_parser("list", help="the agent's documents")
    listing.add_argument("agent")
    args = parser.parse_args(argv)
    if not TENANT_ID.fullmatch(args.tenant):
        parser.error(f"not a tenant id: {args.tenant!r}")

    try:
        library = services().library
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with tenant_scope(args.tenant):
        return _run(library, args)


def _run(library: KnowledgeLibrary, args: argparse.Namespace) -> int:
    try:
        if args.command == "ingest":
            library.list(args.agent)  # the agent must exist before any file is read
            for path in args.paths:  # every file is checked before the first is stored
                if not path.is_file():
                    raise ApiError(f"{path}: no such file", code="file_not_found")
                content_type_of(path.name)
                check_size(path.name, path.stat().st_size, library.limits)
            for path in args.paths:
                document = library.ingest_file(args.agent, path)
                print(f"ingested {args.agent}/{document.document_id}: {document.chunks} chunks from {document.source}")
        elif args.command == "delete":
            library.delete(args.agent, args.document)
            print(f"deleted {args.agent}/{args.document}")
        else:
            for d in library.list(args.agent):
                state = "indexed" if d.indexed else "not indexed"
                print(f"{d.document_id}\t{d.origin}\t{d.chunks} chunks\t{state}\t{d.source}\t{d.title}")
    except ApiError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
