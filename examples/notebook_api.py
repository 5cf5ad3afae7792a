"""ICM from Python, top to bottom: your own claims in, labels and the search trace out.

uv run python examples/notebook_api.py            # the embedded base model (a minute or two)
uv run python examples/notebook_api.py synthetic  # a stand-in scorer: checks the plumbing only
"""

from __future__ import annotations

import sys

from icm.api import Labels, claims_table, label

CAPITALS = {
    "France": ("Paris", "Lyon"),
    "Japan": ("Tokyo", "Osaka"),
    "Italy": ("Rome", "Milan"),
    "Egypt": ("Cairo", "Alexandria"),
    "Canada": ("Ottawa", "Toronto"),
    "Kenya": ("Nairobi", "Mombasa"),
}


def run(scorer: str = "embedded") -> Labels:
    # 1. Claims from plain Python objects: one right and one wrong capital per country.
    claims, relations = [], []
    for country, (right, wrong) in CAPITALS.items():
        for city, gold in ((right, True), (wrong, False)):
            claims.append(
                {
                    "id": f"{country}-{city}",
                    "question": f"What is the capital of {country}?",
                    "claim": f"The capital of {country} is {city}.",
                    "group": country,
                    "gold": gold,  # only for reporting: the search never sees it
                }
            )
        # A country has one capital: exactly one of the two claims is true.
        relations.append(("opposite", f"{country}-{right}", f"{country}-{wrong}"))
    table = claims_table(claims, relations)

    # 2. Search (small settings: seconds to minutes on a CPU).
    result = label(table, scorer=scorer, K=60, num_seed=4, seed=1)

    # 3. Plain records, ready for pandas.DataFrame(result.records()).
    for row in result.records():
        print(
            f"{row['id']:<20} label={row['label']!s:<5} gold={row['gold']!s:<5} "
            f"score={row['score']:+.2f}"
        )
    print(f"agreement with gold: {result.agreement_with_gold()}")
    print(f"trace: {len(result.trace())} steps, final U = {result.trace()[-1]['utility']:.2f}")
    # 4. Is the labelling usable? Label balance, constraints violated, and a WARNING line
    #    when it is degenerate (one label for everything) or mostly inconsistent.
    assert result.summary is not None
    for line in result.summary.lines():
        print(line)
    return result


if __name__ == "__main__":
    run(sys.argv[1] if len(sys.argv) > 1 else "embedded")
