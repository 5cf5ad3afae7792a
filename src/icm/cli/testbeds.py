"""icm testbeds: list the testbeds with sizes and data sources; icm show: print a few
rendered claims of a testbed."""

from __future__ import annotations

import argparse

from icm.cli.options import add_option, data_dir_of
from icm.errors import IcmError
from icm.option import positive_int


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    tb = sub.add_parser(
        "testbeds",
        help="list the testbeds",
        description="List the testbeds with their splits' sizes (or where their data comes "
        "from, when it is not found) and their sources.",
    )
    add_option(tb, "data_dir")
    tb.set_defaults(handler=cmd_testbeds)

    show = sub.add_parser(
        "show",
        help="print rendered claims of a testbed",
        description="Print the first claims of a testbed's split as the model sees them, "
        "with every consistency relation each takes part in.",
    )
    show.add_argument("testbed", help="testbed name (see `icm testbeds`) or a claims file")
    show.add_argument("-n", type=positive_int, default=4, help="how many claims (default 4)")
    add_option(show, "split", help="which split")
    add_option(show, "data_dir")
    add_option(show, "consistency", help="which consistency relations to list (as for icm run)")
    show.add_argument("--gold", action="store_true", help="also print gold labels")
    show.set_defaults(handler=cmd_show)


def cmd_testbeds(args: argparse.Namespace) -> int:
    from icm.testbeds import LoadOptions, list_testbeds

    data_dir = data_dir_of(args)
    rows: list[tuple[str, str, str, str]] = []
    for cls in list_testbeds():
        sizes = []
        for split in cls.splits:
            try:
                n = len(cls().load(split, LoadOptions(data_dir=data_dir)))
                sizes.append(f"{split} {n}")
            except IcmError:
                sizes.append(f"{split} -")
        avail = ", ".join(sizes)
        if cls.needs_data and all(s.endswith(" -") for s in sizes):
            avail = "data not found: " + cls.source
        rows.append((cls.name, avail, cls.summary, cls.source))
    width = max(len(r[0]) for r in rows)
    for name, avail, summary, source in rows:
        pad = " " * width
        print(f"{name:<{width}}  {summary}\n{pad}  claims: {avail}\n{pad}  source: {source}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from icm.testbeds import LoadOptions
    from icm.testbeds.loading import check_claims_file_split, load_table

    check_claims_file_split(args.testbed, args.split)
    table = load_table(
        args.testbed,
        args.split,
        LoadOptions(data_dir=data_dir_of(args), consistency=args.consistency),
    )
    for note in table.notes:
        print(f"# note: {note}")
    for c in table.claims[: args.n]:
        gold = f"   [gold: {c.gold}]" if args.gold else ""
        print(f"--- {c.id} (group {c.group or '-'}){gold}\n{c.prompt}")
        # Every relation the claim takes part in, as either end, and its group constraints.
        for line in table.relations_of(c.id) or ["none"]:
            print(f"  relation: {line}")
    return 0
